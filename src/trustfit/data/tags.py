"""Tagging schemes. Internally trustfit uses IOB2; IOB1 and BIOES (and BILOU) files are
converted on read. Entity decoding follows conlleval: a stray I-X (after O or another type)
starts a new entity, so a strict IOB2 scorer on repaired tags equals conlleval on raw ones."""

from __future__ import annotations

import re
from typing import Sequence

from trustfit.data.schema import Span
from trustfit.errors import DataError

SCHEMES = ("iob1", "iob2", "bioes", "bilou")
_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES", "bilou": "BILU"}
_TAG_RE = re.compile(r"^([A-Z])-(\S+)$")


def split_tag(tag: str) -> tuple[str, str | None]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', None)."""
    if tag == "O":
        return "O", None
    m = _TAG_RE.match(tag)
    if not m:
        return "?", None
    return m.group(1), m.group(2)


def check_scheme(scheme: str) -> str:
    s = scheme.lower()
    if s not in SCHEMES:
        raise DataError(f"unknown tag scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    return s


def tag_problem(tag: str, scheme: str) -> str | None:
    """Why `tag` is not a valid tag of `scheme`, or None when it is."""
    prefix, _ = split_tag(tag)
    if prefix == "O":
        return None
    if prefix == "?" or prefix not in _PREFIXES[scheme]:
        allowed = ", ".join(f"{p}-TYPE" for p in _PREFIXES[scheme])
        return f"tag {tag!r} is not valid in {scheme.upper()} (expected O or {allowed})"
    return None


def convert_tags(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert one sentence's tags from `scheme` to IOB2 (tags must already be valid tags)."""
    scheme = check_scheme(scheme)
    out: list[str] = []
    prev_type: str | None = None
    for tag in tags:
        prefix, typ = split_tag(tag)
        if prefix == "O":
            out.append("O")
        elif scheme == "iob1":
            # In IOB1, I- is the normal inside tag; B- only separates two adjacent same-type entities.
            out.append(f"B-{typ}" if prefix == "B" or prev_type != typ else f"I-{typ}")
        elif prefix in ("S", "U"):
            out.append(f"B-{typ}")
        elif prefix in ("E", "L"):
            out.append(f"I-{typ}")
        else:
            out.append(f"{prefix}-{typ}")
        prev_type = typ
    return out


def repair_iob2(tags: Sequence[str]) -> list[str]:
    """Make an IOB2 sequence valid the conlleval way: an I-X not continuing an X starts one."""
    out: list[str] = []
    prev_type: str | None = None
    for tag in tags:
        prefix, typ = split_tag(tag)
        if prefix == "I" and prev_type != typ:
            tag = f"B-{typ}"
        out.append(tag)
        prev_type = typ
    return out


def spans_from_tags(tags: Sequence[str]) -> list[Span]:
    """Entities of an IOB2 sequence with conlleval semantics (stray I- starts an entity)."""
    spans: list[Span] = []
    start: int | None = None
    cur: str | None = None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, typ = split_tag(tag)
        begins = prefix == "B" or (prefix == "I" and typ != cur)
        if start is not None and (prefix == "O" or begins):
            spans.append(Span(start, i, cur or ""))
            start, cur = None, None
        if begins:
            start, cur = i, typ
    return spans
