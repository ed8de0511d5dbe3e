"""Counterfactual identity swaps that keep spans aligned.

A `Swapper` finds the slots of an example (terms of an aligned list, or person names) and fills
each with the words of a target group. `counterfactual(example, swapper, group, rng)` applies
it to a classification `TextExample` (character spans of the text are replaced, the rest of the
text is kept byte for byte) or to an NER `Sentence` (words replaced, IOB2 tags rebuilt so that
a multi-word name keeps B-PER I-PER, and a term that was a whole entity keeps its type).

NER rules: aligned terms are swapped only where they are outside every entity or are exactly
one whole entity ("German" B-MISC -> "Nigerian" B-MISC; the "Muslim" of "Muslim Brotherhood"
stays); names are swapped where the gold tags say PER (any person label), so the audit asks
whether the model finds "Mohammed Al-Sayed" as often as "Greg Miller" in the same sentence."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from trustfit.data.schema import Sentence
from trustfit.data.tags import spans_from_tags
from trustfit.data.text import TextExample
from trustfit.fairness.terms import TermList, load_term_list

# words, with inner hyphens and dots (Al-Sayed, U.S.) and an optional final dot (Mr.); an
# apostrophe ends a word, so "Emily's" holds the name "Emily"
WORD_RE = re.compile(r"\w+(?:[-.]\w+)*\.?")
PERSON_LABELS = frozenset({"per", "person", "pers"})


@dataclass(frozen=True)
class Slot:
    """Words [start, end) to replace; the group they belong to (None when unknown), the aligned
    row they come from, and for names the parts present and the first name's gender."""

    start: int
    end: int
    group: str | None
    row: int | None = None
    parts: tuple[str, ...] = ()
    gender: str | None = None
    dot: bool = False  # the last word carried a full stop that is not part of the term ("he.")


def match_case(new: str, old: str) -> str:
    """`new` written in the case pattern of `old` (he -> she, He -> She, HE -> SHE)."""
    if len(old) > 1 and old.isupper():
        return new.upper()
    if old[:1].isupper():
        return new[:1].upper() + new[1:]
    if old.islower():
        return new.lower()
    return new


def _fill_case(new_words: Sequence[str], old_words: Sequence[str]) -> list[str]:
    first = old_words[0]
    out = [match_case(new_words[0], first)]
    for w in new_words[1:]:
        out.append(w.upper() if len(first) > 1 and first.isupper() else w.lower() if first.islower() else w)
    return out


def _is_whole_entity_or_outside(tags: Sequence[str] | None, start: int, end: int) -> bool:
    if tags is None:
        return True
    inner = tags[start:end]
    if all(t == "O" for t in inner):
        return True
    if not inner[0].startswith("B-"):
        return False
    typ = inner[0][2:]
    after = tags[end] if end < len(tags) else "O"
    return all(t == f"I-{typ}" for t in inner[1:]) and after != f"I-{typ}"


class AlignedSwap:
    """Terms aligned across groups (he | she): a slot is any listed term; group G's filler is
    the term on the same line in G's column."""

    kind = "aligned"

    def __init__(self, terms: TermList) -> None:
        self.name, self.groups, self.terms = terms.name, list(terms.groups), terms
        self.index: dict[str, list[tuple[tuple[str, ...], int, int]]] = {}
        seen: set[tuple[str, ...]] = set()
        for r, row in enumerate(terms.rows):
            for c, term in enumerate(row):
                key = tuple(w.lower() for w in term.split())
                if key in seen:  # the first line holding a term decides its mapping
                    continue
                seen.add(key)
                self.index.setdefault(key[0], []).append((key, r, c))
        for cands in self.index.values():
            cands.sort(key=lambda x: -len(x[0]))  # longest match first (United States before United)

    def slots(self, words: Sequence[str], tags: Sequence[str] | None = None) -> list[Slot]:
        low = [w.lower() for w in words]
        out: list[Slot] = []
        i = 0
        while i < len(low):
            hit = None
            for key, r, c in self.index.get(low[i], []) + self.index.get(low[i].rstrip("."), []):
                n = len(key)
                window = tuple(low[i:i + n])
                dot = len(window) == n and window != key and window[:-1] + (window[-1].rstrip("."),) == key
                if len(window) == n and (window == key or dot) and _is_whole_entity_or_outside(tags, i, i + n):
                    hit = Slot(i, i + n, self.groups[c], row=r, dot=dot)
                    break
            if hit:
                out.append(hit)
                i = hit.end
            else:
                i += 1
        return out

    def fill(self, slot: Slot, old: Sequence[str], group: str, rng: np.random.Generator, memo: dict) -> list[str]:
        row = self.terms.rows[slot.row]
        new = row[self.groups.index(group)].split()
        as_listed = row[self.groups.index(slot.group)].split()
        written = list(old[:-1]) + [old[-1][:-1]] if slot.dot else list(old)
        if written != as_listed:  # written in another case than the list: carry it over (he -> She)
            new = _fill_case(new, written)
        if slot.dot:  # "he." at a sentence end keeps its full stop
            new = new[:-1] + [new[-1] + "."]
        return new

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "groups": self.groups, "terms_per_group": len(self.terms.rows),
                "source": self.terms.source}


class NameSwap:
    """Person names: a slot is a PER span (NER, from the gold tags) or a listed first name with
    an optional surname after it (classification text). Group G's filler is a first name of the
    same gender (drawn at random when unknown) and a surname from G, as many parts as the
    original had; one person keeps one new name throughout an example."""

    kind = "names"

    def __init__(self, terms: TermList) -> None:
        self.name, self.groups, self.terms = terms.name, list(terms.groups), terms
        self.first: dict[str, tuple[str, str]] = {}
        self.last: dict[str, str] = {}
        for g, by_gender in terms.first_names.items():
            for gender, names in by_gender.items():
                for n in names:
                    self.first.setdefault(n.lower(), (g, gender))
        for g, names in terms.last_names.items():
            for n in names:
                self.last.setdefault(n.lower(), g)

    def slots(self, words: Sequence[str], tags: Sequence[str] | None = None) -> list[Slot]:
        if tags is not None:
            out = []
            for sp in spans_from_tags(tags):
                if sp.label.lower() in PERSON_LABELS:
                    first = words[sp.start].lower()
                    group, gender = self.first.get(first, (None, None))
                    n = sp.end - sp.start
                    parts = ("first",) if n == 1 and first in self.first else ("last",) if n == 1 else ("first", "last")
                    out.append(Slot(sp.start, sp.end, group if group else self.last.get(words[sp.end - 1].lower()),
                                    parts=parts, gender=gender))
            return out
        lowercase_text = not any(c.isupper() for w in words for c in w)
        out, i = [], 0
        while i < len(words):
            w = words[i]
            hit = self.first.get(w.lower()) if (w[:1].isupper() or lowercase_text) else None
            if hit:
                nxt = words[i + 1] if i + 1 < len(words) else ""
                has_last = bool(nxt) and (nxt.lower() in self.last or (nxt[:1].isupper() and nxt.isalpha()
                                                                           and not lowercase_text))
                end = i + 2 if has_last else i + 1
                out.append(Slot(i, end, hit[0], parts=("first", "last") if has_last else ("first",), gender=hit[1]))
                i = end
            else:
                i += 1
        return out

    def fill(self, slot: Slot, old: Sequence[str], group: str, rng: np.random.Generator, memo: dict) -> list[str]:
        key = (tuple(w.lower() for w in old), group)
        if key not in memo:
            gender = slot.gender if slot.gender in ("female", "male") else ("female", "male")[int(rng.integers(2))]
            pool = self.terms.first_names[group].get(gender) or [n for v in self.terms.first_names[group].values() for n in v]
            surnames = self.terms.last_names[group]
            new = []
            if "first" in slot.parts:
                new.append(pool[int(rng.integers(len(pool)))])
            if "last" in slot.parts:
                new.append(surnames[int(rng.integers(len(surnames)))])
            memo[key] = new
        return _fill_case(memo[key], old)

    def describe(self) -> dict[str, Any]:
        t = self.terms
        return {"kind": self.kind, "groups": self.groups, "source": t.source,
                "first_names_per_group": {g: sum(len(v) for v in t.first_names[g].values()) for g in self.groups},
                "surnames_per_group": {g: len(t.last_names[g]) for g in self.groups}}


Swapper = AlignedSwap | NameSwap


def make_swapper(spec: str) -> Swapper:
    """The swapper of a built-in list name or a term list file."""
    terms = load_term_list(spec)
    return AlignedSwap(terms) if terms.kind == "aligned" else NameSwap(terms)


def _text_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    spans = [m.span() for m in WORD_RE.finditer(text)]
    return [text[a:b] for a, b in spans], spans


def example_slots(example: TextExample | Sentence, swapper: Swapper) -> list[Slot]:
    if isinstance(example, Sentence):
        return swapper.slots(example.tokens, example.tags)
    return swapper.slots(_text_words(example.text)[0])


def example_group(example: TextExample | Sentence, swapper: Swapper) -> str:
    """The group an example mentions: one group's name, 'mixed' for several, 'none' for none."""
    groups = {s.group for s in example_slots(example, swapper) if s.group}
    return groups.pop() if len(groups) == 1 else "mixed" if groups else "none"


def counterfactual(example: TextExample | Sentence, swapper: Swapper, group: str,
                   rng: np.random.Generator) -> TextExample | Sentence | None:
    """The example with every slot filled from `group`; None when it has no slot. Labels are
    kept; NER tags are rebuilt around the new words."""
    memo: dict = {}
    if isinstance(example, Sentence):
        slots = swapper.slots(example.tokens, example.tags)
        if not slots:
            return None
        words, tags, last = [], [] if example.tags is not None else None, 0
        for s in slots:
            old = example.tokens[s.start:s.end]
            new = swapper.fill(s, old, group, rng, memo)
            words += example.tokens[last:s.start] + new
            if tags is not None:
                tags += example.tags[last:s.start]
                first = example.tags[s.start]
                typ = first[2:] if first != "O" else None
                tags += [first if typ is None else f"B-{typ}"] + ["O" if typ is None else f"I-{typ}"] * (len(new) - 1)
            last = s.end
        words += example.tokens[last:]
        if tags is not None:
            tags += example.tags[last:]
        return dataclasses.replace(example, tokens=words, tags=tags, offsets=None, text=None)
    words, spans = _text_words(example.text)
    slots = swapper.slots(words)
    if not slots:
        return None
    pieces, last = [], 0
    for s in slots:
        a, b = spans[s.start][0], spans[s.end - 1][1]
        pieces += [example.text[last:a], " ".join(swapper.fill(s, words[s.start:s.end], group, rng, memo))]
        last = b
    pieces.append(example.text[last:])
    return dataclasses.replace(example, text="".join(pieces), meta=dict(example.meta))


def random_counterfactual(example: TextExample | Sentence, swapper: Swapper,
                          rng: np.random.Generator) -> TextExample | Sentence | None:
    """For augmentation: every slot moved to one group drawn at random among the groups other
    than the example's own (any group when its own is unknown); None when it has no slot."""
    slots = example_slots(example, swapper)
    if not slots:
        return None
    own = {s.group for s in slots}
    choices = [g for g in swapper.groups if g not in own] or list(swapper.groups)
    return counterfactual(example, swapper, choices[int(rng.integers(len(choices)))], rng)
