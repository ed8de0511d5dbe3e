"""Perturbation families, one file each, one protocol (base.Perturbation), one registry by name.

A family is named alone (`typo`) or with options (`typo:max_words=3:ops=swap+delete`).
Adding a family is one file and one line in FAMILIES."""

from __future__ import annotations

from typing import Any, Callable

from trustfit.robust.perturb.base import Example, Perturbation, PerturbationError, changed_share, is_changed
from trustfit.robust.perturb.case import Case
from trustfit.robust.perturb.entity_swap import EntitySwap, mention_inventory
from trustfit.robust.perturb.punct import Punct
from trustfit.robust.perturb.typo import Typo
from trustfit.robust.perturb.word_sub import WordSub

# name -> (factory(options, context), tasks); context carries what some families need
FAMILIES: dict[str, tuple[Callable[..., Perturbation], tuple[str, ...]]] = {
    "typo": (lambda ctx, **o: Typo(**o), Typo.tasks),
    "case": (lambda ctx, **o: Case(**o), Case.tasks),
    "punct": (lambda ctx, **o: Punct(**o), Punct.tasks),
    "entity-swap": (lambda ctx, **o: EntitySwap(ctx.get("inventory"), inventory_source=ctx.get("inventory_source", ""), **o),
                    EntitySwap.tasks),
    "entity-novel": (lambda ctx, **o: EntitySwap(ctx.get("inventory"), novel=True,
                                                 inventory_source=ctx.get("inventory_source", ""), **o), EntitySwap.tasks),
    "word-sub": (lambda ctx, **o: WordSub(ctx.get("score"), ctx.get("labels", ()), ctx.get("neighbours"), **o),
                 WordSub.tasks),
}
DEFAULT_FAMILIES = {"ner": ("typo", "case", "punct", "entity-swap", "entity-novel"),
                    "classify": ("typo", "case", "punct", "word-sub")}
# families that need no model: usable for data-level adversarial training
AUGMENT_FAMILIES = ("typo", "case", "punct", "entity-swap", "entity-novel")


def _value(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def parse_family(spec: str) -> tuple[str, dict[str, Any]]:
    """'typo:max_words=3:ops=swap+delete' -> ('typo', {'max_words': 3, 'ops': 'swap+delete'})."""
    name, *opts = [p.strip() for p in spec.strip().split(":")]
    if name not in FAMILIES:
        raise PerturbationError(f"unknown perturbation family {name!r}; known: {', '.join(FAMILIES)}")
    options: dict[str, Any] = {}
    for o in opts:
        if "=" not in o:
            raise PerturbationError(f"{spec!r}: option {o!r} must be key=value (e.g. typo:max_words=3)")
        k, v = o.split("=", 1)
        options[k.strip().replace("-", "_")] = _value(v.strip())
    return name, options


def split_families(specs: str | list[str]) -> list[str]:
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    return [s.strip() for s in items if s.strip()]


def check_families(specs: list[str], task: str, purpose: str = "audit") -> list[tuple[str, dict[str, Any]]]:
    """Parse and check every family for the task (and for training, that it needs no model)."""
    if not specs:
        raise PerturbationError(f"no perturbation family given; known: {', '.join(FAMILIES)}")
    parsed = [parse_family(s) for s in specs]
    for name, _ in parsed:
        tasks = FAMILIES[name][1]
        if task not in tasks:
            fix = ("; for classification use typo, case, punct or word-sub" if task == "classify"
                   else "; for NER use typo, case, punct, entity-swap or entity-novel")
            raise PerturbationError(f"{name} applies to {' and '.join(tasks)} models only, not {task}{fix}")
        if purpose == "augment" and name not in AUGMENT_FAMILIES:
            raise PerturbationError(f"{name} is a model-guided attack and cannot augment training data; "
                                    f"use {', '.join(f for f in AUGMENT_FAMILIES if task in FAMILIES[f][1])}")
    return parsed


def make_family(name: str, options: dict[str, Any], context: dict[str, Any] | None = None) -> Perturbation:
    factory = FAMILIES[name][0]
    try:
        return factory(context or {}, **options)
    except TypeError as e:
        raise PerturbationError(f"{name}: bad option ({e}); see the family's documentation in "
                                f"trustfit/robust/perturb/") from None


__all__ = ["AUGMENT_FAMILIES", "DEFAULT_FAMILIES", "Example", "FAMILIES", "Perturbation", "PerturbationError",
           "changed_share", "check_families", "is_changed", "make_family", "mention_inventory", "parse_family",
           "split_families"]
