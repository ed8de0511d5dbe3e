"""Data-level adversarial training: every epoch mixes freshly perturbed copies of a share of the
training examples (made by the audit's own families) into the epoch's features.

Copies are drawn per epoch from a generator seeded by (seed, epoch), so every process of a
2-process run and a resumed run build the same ones. The copies are added to the clean data
(not replacing it); NER copies are single sentences, encoded without document context."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from trustfit.robust.perturb import Perturbation, is_changed
from trustfit.train.plugins import EpochData


class TextAugmentation(EpochData):
    """Adds `rate` x len(examples) perturbed copies to each epoch (families drawn uniformly)."""

    def __init__(self, examples: Sequence[Any], families: Sequence[Perturbation], rate: float, seed: int,
                 encode: Callable[[list[Any]], list[Any]], base_features: Sequence[Any]) -> None:
        self.examples, self.families, self.rate, self.seed = list(examples), list(families), float(rate), int(seed)
        self.encode = encode
        self.base = list(base_features)
        self.stats: dict[int, dict[str, Any]] = {}
        self.notes: list[str] = []

    def copies(self, epoch: int) -> list[Any]:
        """The perturbed examples of `epoch` (deterministic in seed and epoch)."""
        rng = np.random.default_rng([self.seed, epoch, 0x5EED])
        k = int(round(self.rate * len(self.examples)))
        chosen = rng.choice(len(self.examples), size=min(k, len(self.examples)), replace=False)
        out, per_family, unchanged = [], {f.name: 0 for f in self.families}, 0
        for i in sorted(int(j) for j in chosen):
            fam = self.families[int(rng.integers(len(self.families)))]
            new = fam.apply(self.examples[i], rng)
            if is_changed(self.examples[i], new):
                out.append(new)
                per_family[fam.name] += 1
            else:
                unchanged += 1
        self.stats[epoch] = {"copies": len(out), "per_family": per_family, "unchanged_skipped": unchanged}
        return out

    def build(self, epoch: int) -> list[Any]:
        """Clean features followed by the encoded copies of `epoch`."""
        return self.base + self.encode(self.copies(epoch))

    def summary(self) -> dict[str, Any]:
        return {"families": [f.name for f in self.families], "rate": self.rate, "mode": "added copies",
                "constraints": {f.name: f.constraints() for f in self.families},
                "epochs": {str(e): s for e, s in sorted(self.stats.items())}, "notes": self.notes}


def make_augmentation(cfg, task, tokenizer, max_length: int, base_features: Sequence[Any]) -> TextAugmentation:
    """The augmentation plugin for a training run (`cfg.augment`, `cfg.augment_rate`)."""
    from trustfit.robust.perturb import check_families, make_family, mention_inventory

    parsed = check_families(cfg.augment, cfg.task, purpose="augment")
    if cfg.task == "ner":
        from trustfit.data.schema import Corpus
        from trustfit.encode.tokenize import encode_corpus

        examples = task.train.sentences
        context = {"inventory": mention_inventory([task.train]), "inventory_source": f"{cfg.train} (training data)"}

        def encode(copies: list[Any]) -> list[Any]:
            if not copies:
                return []
            return encode_corpus(Corpus(copies, source="<augmented>"), tokenizer, task.schema, max_length, 0, cfg.stride)
    else:
        from trustfit.data.text import TextCorpus
        from trustfit.encode.text import encode_texts

        examples = task.train.examples
        context = {}

        def encode(copies: list[Any]) -> list[Any]:
            return encode_texts(TextCorpus(copies), tokenizer, task.label2id, max_length)[0] if copies else []
    families = [make_family(n, o, context) for n, o in parsed]
    aug = TextAugmentation(examples, families, cfg.augment_rate, cfg.seed, encode, base_features)
    if any(f.name == "case" for f in families) and getattr(tokenizer, "do_lower_case", False):
        aug.notes.append("this tokenizer lowercases its input: case copies are the original examples again")
    return aug
