"""Deduplicate, then make stratified, seeded train/dev/test splits.

Duplicates must go before splitting, or train and test leak into each other (Financial
PhraseBank 50Agree: 4,846 lines, 4,838 distinct sentences, 2 of them with two labels).
Exact repeats keep one copy; texts seen with different labels are dropped entirely."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from trustfit.data.text import TextCorpus, TextExample, write_jsonl
from trustfit.errors import DataError


@dataclass
class SplitReport:
    rows_in: int
    duplicate_rows_dropped: int
    conflicting_texts: int
    conflict_rows_dropped: int
    sizes: dict[str, int]
    label_counts: dict[str, dict[str, int]]
    seed: int

    def to_json(self) -> dict:
        return asdict(self)


def deduplicate(examples: list[TextExample]) -> tuple[list[TextExample], int, int, int]:
    """(kept, duplicate rows dropped, conflicting texts, rows dropped for conflicts)."""
    groups: dict[tuple[str, str | None], list[TextExample]] = defaultdict(list)
    for e in examples:
        groups[(e.text, e.text_pair)].append(e)
    kept, dups, conflicts, conflict_rows = [], 0, 0, 0
    for key, rows in groups.items():
        labels = {r.label for r in rows}
        if len(labels) > 1:
            conflicts += 1
            conflict_rows += len(rows)
            continue
        kept.append(rows[0])
        dups += len(rows) - 1
    kept.sort(key=lambda e: e.line)
    return kept, dups, conflicts, conflict_rows


def split_corpus(corpus: TextCorpus, dev: float = 0.1, test: float = 0.1, seed: int = 42
                 ) -> tuple[dict[str, list[TextExample]], SplitReport]:
    """Deduplicate and split stratified by label; fractions are of the deduplicated rows."""
    from sklearn.model_selection import train_test_split

    if not (0 <= dev < 1 and 0 <= test < 1 and dev + test < 1):
        raise DataError(f"split fractions dev={dev}, test={test} must be in [0, 1) and sum below 1")
    if any(e.label is None for e in corpus.examples):
        raise DataError(f"{corpus.source}: splitting needs labels on every row")
    kept, dups, conflicts, conflict_rows = deduplicate(corpus.examples)
    labels = [e.label for e in kept]
    parts: dict[str, list[TextExample]] = {}
    rest = kept
    if test > 0:
        rest, parts["test"] = train_test_split(kept, test_size=test, random_state=seed, stratify=labels)
    if dev > 0:
        rest_labels = [e.label for e in rest]
        rest, parts["dev"] = train_test_split(rest, test_size=dev / (1 - test), random_state=seed,
                                              stratify=rest_labels)
    parts = {"train": rest, **{k: parts[k] for k in ("dev", "test") if k in parts}}
    counts = {name: dict(sorted(_count([e.label for e in ex]).items())) for name, ex in parts.items()}
    report = SplitReport(len(corpus), dups, conflicts, conflict_rows, {k: len(v) for k, v in parts.items()},
                         counts, seed)
    return parts, report


def _count(labels):
    out: dict = defaultdict(int)
    for l in labels:
        out[l] += 1
    return out


def write_splits(parts: dict[str, list[TextExample]], out_dir: str | Path) -> dict[str, str]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, ex in parts.items():
        p = out / f"{name}.jsonl"
        write_jsonl(p, ex)
        paths[name] = str(p)
    return paths
