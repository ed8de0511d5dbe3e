"""`trustfit scan`: personal data in a training file, found with validating libraries (so a
look-alike that fails its checksum is not reported): e-mail addresses, phone numbers
(`phonenumbers`, numbers valid for their region), payment card numbers (Luhn, `python-stdnum`),
IBANs (ISO 13616 check digits, `python-stdnum`) and, with a trustfit NER model, person names.
A redacted copy keeps the file's format: CoNLL columns and tags stay, one placeholder a token."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from trustfit.errors import DataError

PLACEHOLDER = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "iban": "[IBAN]", "person": "[PER]"}
SCAN_FORMATS = ("auto", "conll", "csv", "tsv", "jsonl", "text")
EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN = re.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Z0-9])")


@dataclass
class Finding:
    kind: str
    value: str
    line: int
    start: int  # character offsets in the scanned text (a cell, a line or a sentence's words joined by spaces)
    end: int
    field: str | None = None


def _emails(text: str, region: str) -> list[tuple[int, int]]:
    return [m.span() for m in EMAIL.finditer(text)]


def _phones(text: str, region: str) -> list[tuple[int, int]]:
    import phonenumbers

    return [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)]


def _cards(text: str, region: str) -> list[tuple[int, int]]:
    from stdnum import luhn

    out = []
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            out.append(m.span())
    return out


def _ibans(text: str, region: str) -> list[tuple[int, int]]:
    from stdnum import iban

    out = []
    for m in IBAN.finditer(text):
        value = m.group()
        # the pattern may run into a following word: try the longest prefix that validates
        while len(value.replace(" ", "")) >= 15:
            if iban.is_valid(value):
                out.append((m.start(), m.start() + len(value)))
                break
            value = value[:-1].rstrip()
    return out


# registry by name; earlier kinds win where two overlap (an IBAN's digits are not also a card)
DETECTORS: dict[str, Callable[[str, str], list[tuple[int, int]]]] = {
    "email": _emails, "iban": _ibans, "card": _cards, "phone": _phones}


def find_pii(text: str, region: str = "US") -> list[tuple[str, int, int]]:
    """(kind, start, end) of every validated value in `text`, without overlaps, in text order."""
    taken: list[tuple[str, int, int]] = []
    for kind, detect in DETECTORS.items():
        for s, e in detect(text, region):
            if all(e <= ts or s >= te for _, ts, te in taken):
                taken.append((kind, s, e))
    return sorted(taken, key=lambda x: x[1])


def redact_text(text: str, spans: list[tuple[str, int, int]]) -> str:
    """`text` with each span replaced by its kind's placeholder."""
    for kind, s, e in sorted(spans, key=lambda x: -x[1]):
        text = text[:s] + PLACEHOLDER[kind] + text[e:]
    return text


def detect_scan_format(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"),
                        (".conll", "conll"), (".iob", "conll"), (".bio", "conll")):
        if name.endswith(suffix):
            return fmt
    lines = [l for l in path.read_text(encoding="utf-8", errors="replace").splitlines()[:200] if l.strip()]
    conll_like = sum(len(l.split()) >= 2 and len(l.split()) <= 10 and not l.strip().endswith(".") for l in lines)
    return "conll" if lines and conll_like > 0.9 * len(lines) else "text"


class Scanner:
    """Scans one file; `persons(texts)` (from a NER model) adds person names."""

    def __init__(self, region: str = "US", ner_model: str | None = None, encoding: str = "utf-8") -> None:
        self.region, self.encoding = region, encoding
        self.ner = None
        if ner_model:
            from trustfit.predict.ner import NerPredictor

            self.ner = NerPredictor.from_dir(ner_model)

    def _persons(self, token_lists: list[list[str]]) -> list[list[tuple[int, int]]]:
        """Word spans [start, end) tagged PER, per token list."""
        if self.ner is None or not token_lists:
            return [[] for _ in token_lists]
        from trustfit.data.schema import Corpus, Sentence
        from trustfit.data.tags import spans_from_tags

        pred = self.ner.predict(Corpus([Sentence(list(t)) for t in token_lists]))
        return [[(sp.start, sp.end) for sp in spans_from_tags(tags) if sp.label == "PER"] for tags in pred.tags]

    # -- formats ----------------------------------------------------------------------------
    def scan(self, path: str | Path, fmt: str = "auto", redact: str | Path | None = None) -> dict[str, Any]:
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such file")
        if fmt not in SCAN_FORMATS:
            raise DataError(f"--format {fmt!r}: use one of {', '.join(SCAN_FORMATS)}")
        fmt = detect_scan_format(p) if fmt == "auto" else fmt
        try:
            text = p.read_text(encoding=self.encoding)
        except UnicodeDecodeError as e:
            raise DataError(f"{p}: not {self.encoding} text (byte {e.start}); pass --encoding, e.g. latin-1 for "
                            "Financial PhraseBank") from None
        findings, redacted = self._conll(text) if fmt == "conll" else self._records(text, fmt, p)
        if redact:
            Path(redact).write_text(redacted, encoding=self.encoding)
        counts = Counter(f.kind for f in findings)
        return {"file": str(p), "format": fmt, "region": self.region, "names_checked": self.ner is not None,
                "counts": {k: counts.get(k, 0) for k in PLACEHOLDER if k != "person" or self.ner is not None},
                "findings": [asdict(f) for f in findings], "redacted": str(redact) if redact else None}

    def _conll(self, text: str) -> tuple[list[Finding], str]:
        lines = text.split("\n")
        sentences: list[list[int]] = []  # line indices of each sentence's tokens
        current: list[int] = []
        for i, line in enumerate(lines):
            if not line.strip() or line.startswith("-DOCSTART-"):
                if current:
                    sentences.append(current)
                current = []
            else:
                current.append(i)
        if current:
            sentences.append(current)
        tokens = [[lines[i].split()[0] for i in s] for s in sentences]
        persons = self._persons(tokens)
        findings: list[Finding] = []
        replace: dict[int, str] = {}
        for sent, toks, pers in zip(sentences, tokens, persons):
            joined, starts = "", []
            for t in toks:
                starts.append(len(joined) + (1 if joined else 0))
                joined = f"{joined} {t}" if joined else t
            spans = [("person", starts[a], starts[b - 1] + len(toks[b - 1])) for a, b in pers]
            spans += [s for s in find_pii(joined, self.region) if all(s[2] <= ps or s[1] >= pe for _, ps, pe in spans)]
            for kind, s, e in spans:
                covered = [j for j, st in enumerate(starts) if st < e and st + len(toks[j]) > s]
                findings.append(Finding(kind, joined[s:e], sent[covered[0]] + 1, s, e))
                for j in covered:
                    replace[sent[j]] = PLACEHOLDER[kind]
        out = []
        for i, line in enumerate(lines):
            if i in replace:
                first = line.split()[0]
                at = line.index(first)
                line = line[:at] + replace[i] + line[at + len(first):]
            out.append(line)
        return sorted(findings, key=lambda f: (f.line, f.start)), "\n".join(out)

    def _records(self, text: str, fmt: str, path: Path) -> tuple[list[Finding], str]:
        """Plain lines, CSV/TSV cells or JSONL string fields: each scanned and redacted in place."""
        cells: list[tuple[int, str | None, str]] = []  # (line, field, text)
        if fmt in ("csv", "tsv"):
            reader = csv.reader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t")
            rows = []
            for row in reader:
                rows.append((reader.line_num, row))
            header = rows[0][1] if rows else []
            for line, row in rows[1:]:
                cells += [(line, header[j] if j < len(header) else str(j), v) for j, v in enumerate(row)]
        elif fmt == "jsonl":
            for i, raw in enumerate(text.splitlines(), 1):
                if raw.strip():
                    try:
                        row = json.loads(raw)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{i}: not valid JSON ({e.msg}); fix the line or pass --format text")
                    cells += [(i, k, v) for k, v in row.items() if isinstance(v, str)]
        else:
            cells = [(i, None, line) for i, line in enumerate(text.splitlines(), 1)]
        words = []
        if self.ner is not None:
            from trustfit.predict.ner import tokenize_text

            words = [tokenize_text(c[2]) for c in cells]
        persons = self._persons([w for w, _ in words]) if words else [[] for _ in cells]
        findings: list[Finding] = []
        new_text: dict[tuple[int, str | None], str] = {}
        for k, (line, field, value) in enumerate(cells):
            spans = [("person", words[k][1][a][0], words[k][1][b - 1][1]) for a, b in persons[k]]
            spans += [s for s in find_pii(value, self.region) if all(s[2] <= ps or s[1] >= pe for _, ps, pe in spans)]
            findings += [Finding(kind, value[s:e], line, s, e, field) for kind, s, e in spans]
            new_text[(line, field)] = redact_text(value, spans)
        return sorted(findings, key=lambda f: (f.line, f.start)), self._rewrite(text, fmt, new_text, cells)

    @staticmethod
    def _rewrite(text: str, fmt: str, new_text: dict, cells: list) -> str:
        if fmt in ("csv", "tsv"):
            reader = csv.reader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t")
            buf = io.StringIO()
            writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
            header = None
            for row in reader:
                if header is None:
                    header = row
                else:
                    line = reader.line_num
                    row = [new_text.get((line, header[j] if j < len(header) else str(j)), v) for j, v in enumerate(row)]
                writer.writerow(row)
            return buf.getvalue()
        out = []
        for i, raw in enumerate(text.splitlines(), 1):
            if fmt == "jsonl" and raw.strip():
                row = json.loads(raw)
                out.append(json.dumps({k: new_text.get((i, k), v) for k, v in row.items()}, ensure_ascii=False))
            else:
                out.append(new_text.get((i, None), raw))
        return "\n".join(out) + ("\n" if text.endswith("\n") else "")
