"""Readers for text-classification data: CSV / TSV / JSONL with named text (and optional pair)
and label columns, plus the shared formats: Financial PhraseBank (`sentence@label`, latin-1,
split on the last `@`), Banking77 (CSV with quoted newlines and CRLF), SST-2 (TSV with header).

Every problem is collected with file, line and field and reported at once."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from trustfit.errors import DataError, join_problems

FORMATS = ("auto", "csv", "tsv", "jsonl", "fpb")


@dataclass
class TextExample:
    """One classification input: text (and optional second text), label (None when unlabelled),
    where it came from, and any other fields of the row (time, topic, ... for the monitor)."""

    text: str
    label: str | None = None
    text_pair: str | None = None
    line: int = 0
    source: str = "<memory>"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TextCorpus:
    examples: list[TextExample]
    source: str = "<memory>"

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self):
        return iter(self.examples)

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.examples if e.label is not None]

    def label_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    @property
    def n_words(self) -> int:
        return sum(len(e.text.split()) + len((e.text_pair or "").split()) for e in self.examples)


def json_object_lines(text: str, path, problems: list[str],
                      expected: str = "a JSON object per line") -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty JSONL line; bad lines go to `problems` as file:line."""
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{path}:{i}: not valid JSON ({e.msg}): {line[:80]!r}")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path}:{i}: expected {expected}")
            continue
        yield i, row


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".tsv"):
        return "tsv"
    if name.startswith("sentences_") and name.endswith(".txt"):
        return "fpb"
    raise DataError(f"{path}: cannot tell the format from the name; pass --format ({', '.join(FORMATS[1:])})")


def _open_text(path: Path, encoding: str) -> str:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: cannot decode byte {data[e.start:e.start + 1]!r} as {encoding}; "
                        "pass the right --encoding (Financial PhraseBank is latin-1)") from None
    return text[1:] if text.startswith("\ufeff") else text


def read_text_corpus(path: str | Path, format: str = "auto", text_column: str = "text",
                     label_column: str | None = "label", pair_column: str | None = None,
                     encoding: str | None = None) -> TextCorpus:
    """Read a labelled (or, with label_column=None, unlabelled) classification file."""
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise DataError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    enc = encoding or ("latin-1" if fmt == "fpb" else "utf-8")
    text = _open_text(path, enc)
    problems: list[str] = []
    examples: list[TextExample] = []
    if fmt == "fpb":
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            sent, sep, lab = line.rpartition("@")
            if not sep:
                problems.append(f"{path}:{i}: no '@' separating sentence and label: {line[:80]!r}")
                continue
            examples.append(TextExample(sent.strip(), lab.strip() if label_column else None, None, i, str(path)))
    elif fmt == "jsonl":
        for i, row in json_object_lines(text, path, problems):
            _row_to_example(row, i, path, text_column, label_column, pair_column, examples, problems)
    else:
        reader = csv.DictReader(text.splitlines(keepends=True), delimiter="\t" if fmt == "tsv" else ",",
                                quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
        cols = reader.fieldnames or []
        missing = [c for c in (text_column, label_column, pair_column) if c and c not in cols]
        if missing:
            raise DataError(f"{path}: no column {', '.join(map(repr, missing))}; the columns are "
                            f"{', '.join(map(repr, cols))}. Choose with --text-column / --label-column.")
        start = 2
        for row in reader:
            _row_to_example(row, start, path, text_column, label_column, pair_column, examples, problems)
            start = reader.line_num + 1
    if problems:
        raise DataError(join_problems(f"{path}: {len(problems)} bad rows", problems))
    if not examples:
        raise DataError(f"{path}: no examples found (the file is empty)")
    return TextCorpus(examples, source=str(path))


def _row_to_example(row: dict, line: int, path: Path, text_column: str, label_column: str | None,
                    pair_column: str | None, out: list[TextExample], problems: list[str]) -> None:
    text = row.get(text_column)
    if text is None and not isinstance(row, dict):
        return
    if text is None:
        problems.append(f"{path}:{line}: field {text_column!r} is missing (fields: {', '.join(row)})")
        return
    text = str(text).strip()
    if not text:
        problems.append(f"{path}:{line}: field {text_column!r} is empty")
        return
    label = None
    if label_column:
        label = row.get(label_column)
        if label is None or str(label).strip() == "":
            problems.append(f"{path}:{line}: field {label_column!r} (the label) is missing or empty")
            return
        label = str(label).strip()
    pair = None
    if pair_column:
        pair = str(row.get(pair_column) or "").strip()
        if not pair:
            problems.append(f"{path}:{line}: field {pair_column!r} (the second text) is missing or empty")
            return
    meta = {k: v for k, v in row.items() if k not in (text_column, label_column, pair_column)}
    out.append(TextExample(text, label, pair, line, str(path), meta))


def write_jsonl(path: str | Path, examples: list[TextExample]) -> None:
    """Write examples as JSONL with text / text_pair / label fields."""
    with open(path, "w", encoding="utf-8") as f:
        for e in examples:
            row: dict[str, Any] = {"text": e.text}
            if e.text_pair is not None:
                row["text_pair"] = e.text_pair
            if e.label is not None:
                row["label"] = e.label
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
