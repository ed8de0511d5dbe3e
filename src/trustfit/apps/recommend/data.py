"""Interaction logs and user attributes.

Logs: MovieLens `u.data` (`user<TAB>item<TAB>rating<TAB>unix time`), or a generic JSONL / CSV
with the fields `user`, `item`, `rating` (a number) or `label` (1 liked, 0 not), and `time`
(unix seconds or ISO-8601). Every malformed line is reported with file:line; rows are kept in
time order (ties in file order)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from trustfit.data.text import json_object_lines
from trustfit.errors import DataError, join_problems


@dataclass(frozen=True)
class Interaction:
    """One behaviour event: `value` is a rating (or 1/0 for a liked/not-liked label)."""

    user: str
    item: str
    value: float
    time: int
    line: int = 0

    def to_json(self, scale: str = "rating") -> dict:
        value = self.value if scale == "rating" else int(self.value)
        return {"user": self.user, "item": self.item, scale: value, "time": self.time}


@dataclass
class InteractionLog:
    """Time-ordered interactions; `scale` is "rating" or "label" (how `value` reads)."""

    events: list[Interaction]
    source: str
    scale: str = "rating"

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[Interaction]:
        return iter(self.events)

    @property
    def users(self) -> set[str]:
        return {e.user for e in self.events}

    def split_by_time(self, dev_share: float) -> tuple["InteractionLog", "InteractionLog", int]:
        """(earlier, later, first time of the later part): the last `dev_share` of the events by time;
        events at the cut's timestamp all go to the later part, so no time is in both."""
        if not 0 < dev_share < 1:
            raise DataError(f"dev share must be between 0 and 1 (got {dev_share})")
        if len(self.events) < 2:
            raise DataError(f"{self.source}: {len(self.events)} interactions; need at least 2 to split off a dev period")
        cut_time = self.events[int(len(self.events) * (1 - dev_share))].time
        early = [e for e in self.events if e.time < cut_time]
        late = [e for e in self.events if e.time >= cut_time]
        if not early:
            raise DataError(f"{self.source}: every interaction has the same time; cannot split by time")
        return (InteractionLog(early, self.source, self.scale), InteractionLog(late, self.source, self.scale),
                cut_time)

    def write_jsonl(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as f:
            for e in self.events:
                f.write(json.dumps(e.to_json(self.scale)) + "\n")


def _parse_time(raw, where: str, problems: list[str]) -> int | None:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return int(raw)
    text = str(raw or "").strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        problems.append(f"{where}: field 'time' is {text!r}; give unix seconds or an ISO-8601 time")
        return None
    return int((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp())


def _movielens_rows(path: Path, problems: list[str]) -> Iterator[tuple[int, dict]]:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            problems.append(f"{path}:{i}: expected user<TAB>item<TAB>rating<TAB>unix time, got {line[:60]!r}")
            continue
        yield i, dict(zip(("user", "item", "rating", "time"), parts))


def table_rows(path: Path, fmt: str, problems: list[str], expected: str) -> Iterator[tuple[int, dict]]:
    """(line, row) of a JSONL or CSV file (with a header); bad JSON lines go to `problems`."""
    if fmt == "jsonl":
        yield from json_object_lines(path.read_text(encoding="utf-8"), path, problems, expected)
        return
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            yield reader.line_num, row


def detect_log_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    return "movielens"


def read_interactions(path: str | Path, fmt: str = "auto") -> InteractionLog:
    """Read a log (format: auto, movielens, jsonl, csv); every problem reported at once."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: interaction log not found")
    fmt = detect_log_format(p) if fmt == "auto" else fmt
    if fmt not in ("movielens", "jsonl", "csv"):
        raise DataError(f"unknown log format {fmt!r}; use movielens, jsonl or csv")
    problems: list[str] = []
    rows = _movielens_rows(p, problems) if fmt == "movielens" else \
        table_rows(p, fmt, problems, "a JSON object with user, item, rating or label, time")
    events, scales = [], set()
    for line, row in rows:
        where = f"{p}:{line}"
        user, item = str(row.get("user") or "").strip(), str(row.get("item") or "").strip()
        if not user or not item:
            problems.append(f"{where}: field {'user' if not user else 'item'!r} is missing or empty")
            continue
        field = "rating" if row.get("rating") not in (None, "") else "label" if row.get("label") not in (None, "") \
            else None
        if field is None:
            problems.append(f"{where}: give a 'rating' (a number) or a 'label' (1 liked, 0 not)")
            continue
        try:
            value = float(row[field])
        except (TypeError, ValueError):
            problems.append(f"{where}: field {field!r} is {row[field]!r}, not a number")
            continue
        if field == "label" and value not in (0.0, 1.0):
            problems.append(f"{where}: field 'label' is {row[field]!r}; use 1 (liked) or 0 (not liked)")
            continue
        time = _parse_time(row.get("time"), where, problems)
        if time is None:
            continue
        scales.add(field)
        events.append(Interaction(user, item, value, time, line))
    if len(scales) > 1:
        problems.append(f"{p}: rows mix 'rating' and 'label'; use one of them for the whole log")
    if problems:
        raise DataError(join_problems(f"{p}: {len(problems)} problem(s) in the interaction log:", problems))
    if not events:
        raise DataError(f"{p}: no interactions")
    events.sort(key=lambda e: e.time)  # stable: ties keep file order
    return InteractionLog(events, str(p), "label" if scales == {"label"} else "rating")


def read_users(path: str | Path) -> dict[str, dict[str, str]]:
    """MovieLens `u.user` (`id|age|gender|occupation|zip`) or a CSV with an `id` column: user ->
    attributes, with an `age_band` (under 25, 25-34, 35-44, 45+) where an age is given."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: users file not found")
    out: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    if p.suffix.lower() == ".csv":
        with p.open(encoding="utf-8", newline="") as f:
            rows: Iterable[tuple[int, dict]] = [(i, r) for i, r in enumerate(csv.DictReader(f), 2)]
    else:
        rows = []
        for i, line in enumerate(p.read_text(encoding="latin-1").splitlines(), 1):
            parts = line.split("|")
            if line.strip() and len(parts) != 5:
                problems.append(f"{p}:{i}: expected id|age|gender|occupation|zip, got {line[:60]!r}")
            elif line.strip():
                rows.append((i, dict(zip(("id", "age", "gender", "occupation", "zip"), parts))))
    for i, r in rows:
        uid = str(r.get("id") or "").strip()
        if not uid:
            problems.append(f"{p}:{i}: field 'id' is missing")
            continue
        attrs = {k: str(v) for k, v in r.items() if k not in ("id", "zip") and v not in (None, "")}
        if attrs.get("age", "").isdigit():
            age = int(attrs["age"])
            attrs["age_band"] = "under 25" if age < 25 else "25-34" if age < 35 else "35-44" if age < 45 else "45+"
        out[uid] = attrs
    if problems:
        raise DataError(join_problems(f"{p}: {len(problems)} problem(s) in the users file:", problems))
    return out
