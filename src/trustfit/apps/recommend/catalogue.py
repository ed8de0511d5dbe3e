"""Item catalogues: MovieLens `u.item` (+ `u.genre`) joined with `movie_wiki.csv` summaries by
title, or a generic CSV / JSONL of `id`, `text` (optional `title`, `genres` separated by `|`).

The title join is reported, never silent: MovieLens titles move articles to the end
(`Shawshank Redemption, The (1994)`), lose accents, and some titles are listed under two ids."""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from trustfit.apps.recommend.data import table_rows
from trustfit.errors import DataError, join_problems

MOVIELENS_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                    "War", "Western")
LOST = "\ufffd"  # a character lost in the catalogue (matched by any one character)
_ARTICLES = ("the", "a", "an", "la", "le", "les", "il", "l'", "el", "das", "der", "die")


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    genres: tuple[str, ...] = ()
    summary: str | None = None

    @property
    def text(self) -> str:
        """The item's input to the pair model: title, genres, summary."""
        parts = [self.title]
        if self.genres:
            parts.append("Genres: " + ", ".join(self.genres) + ".")
        if self.summary:
            parts.append(self.summary)
        return " ".join(parts)


@dataclass
class Catalogue:
    items: dict[str, Item]
    source: str
    join: dict = field(default_factory=dict)  # the title join's report, when summaries were joined

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.items

    @property
    def ids(self) -> list[str]:
        return list(self.items)

    @cached_property
    def index(self) -> dict[str, int]:
        """Item id -> its row in every per-item array (the order of `ids`)."""
        return {iid: i for i, iid in enumerate(self.items)}

    def to_jsonl(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as f:
            for it in self.items.values():
                f.write(json.dumps({"id": it.id, "title": it.title, "genres": list(it.genres),
                                    "summary": it.summary}, ensure_ascii=False) + "\n")


def _plain(title: str) -> str:
    t = unicodedata.normalize("NFKD", title)
    return "".join(c for c in t if not unicodedata.combining(c)).lower().strip()


def title_key(title: str) -> str:
    """A join key: accents stripped, lower case, a trailing article (`X, The (1994)`) moved back to
    the front, punctuation and spacing unified; the year is kept (remakes share titles)."""
    t = _plain(title)
    m = re.match(r"^(.*?)(\s*\([^()]*\))*\s*(\(\d{4}\))?$", t)
    year = (m.group(3) or "") if m else ""
    body = t[: len(t) - len(year)].strip() if year else t
    # "shawshank redemption, the" / "double vie de veronique, la (double life of veronique, the)"
    body = re.sub(r"^(.*?), (" + "|".join(re.escape(a) for a in _ARTICLES) + r")(\s*\(.*\))?$", r"\2 \1\3", body)
    body = re.sub(r"[^a-z0-9]+", " ", body).strip()
    return f"{body} {year}".strip()


def read_movielens_items(path: str | Path, genres_path: str | Path | None = None) -> Catalogue:
    """`u.item` (latin-1, `|`-separated, 19 genre flags in `u.genre` order)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: item catalogue not found")
    genres = list(MOVIELENS_GENRES)
    gp = Path(genres_path) if genres_path else p.with_name("u.genre")
    if gp.exists():
        genres = [line.split("|")[0] for line in gp.read_text(encoding="latin-1").splitlines() if line.strip()]
    items: dict[str, Item] = {}
    problems: list[str] = []
    for i, line in enumerate(p.read_text(encoding="latin-1").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5 + len(genres):
            problems.append(f"{p}:{i}: expected id|title|release|video|url and {len(genres)} genre flags, "
                            f"got {len(parts)} fields")
            continue
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            problems.append(f"{p}:{i}: genre flags must be 0 or 1")
            continue
        # where an accent was lost, the file holds UTF-8's replacement character (read as latin-1: "ï¿½")
        title = parts[1].strip().replace("\u00ef\u00bf\u00bd", LOST)
        items[parts[0]] = Item(parts[0], title, tuple(g for g, f in zip(genres, flags) if f == "1"))
    if problems:
        raise DataError(join_problems(f"{p}: {len(problems)} problem(s) in the catalogue:", problems))
    return Catalogue(items, str(p))


def join_summaries(cat: Catalogue, path: str | Path, title_column: str = "movie_title",
                   text_column: str = "wiki_summary") -> Catalogue:
    """Attach summaries keyed by title: exact title first, then `title_key`, then (for titles with a
    lost character) a pattern where that character matches any one. Reported: items
    matched (exactly / by key), items without a summary, summaries that match no item, and keys
    shared by several different summaries (ambiguous: none is attached)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: summaries file not found")
    with p.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {title_column, text_column} <= set(reader.fieldnames):
            raise DataError(f"{p}: expected the columns {title_column!r} and {text_column!r}, "
                            f"found {reader.fieldnames}")
        rows = [(r[title_column].strip(), (r[text_column] or "").strip()) for r in reader]
    exact = {t: s for t, s in rows if s}
    by_key: dict[str, set[str]] = defaultdict(set)
    title_of_key: dict[str, list[str]] = defaultdict(list)
    for t, s in rows:
        if s:
            by_key[title_key(t)].add(s)
            title_of_key[title_key(t)].append(t)
    used: set[str] = set()
    items, n_exact, n_key, n_lost, unmatched, ambiguous = {}, 0, 0, 0, [], []
    for it in cat.items.values():
        summary = exact.get(it.title)
        if summary is not None:
            n_exact += 1
            used.add(it.title)
        else:
            found = by_key.get(title_key(it.title), set())
            if len(found) == 1:
                summary = next(iter(found))
                n_key += 1
                used.update(title_of_key[title_key(it.title)])
            elif len(found) > 1:
                ambiguous.append(f"{it.id} {it.title!r}: {len(found)} different summaries")
            elif LOST in it.title:
                # an accent lost in the catalogue: any one character may stand there
                pattern = re.compile(re.escape(_plain(it.title)).replace(re.escape(LOST), "."))
                hits = [t for t in exact if pattern.fullmatch(_plain(t))]
                if len(hits) == 1:
                    summary, title = exact[hits[0]], hits[0]
                    n_lost += 1
                    used.add(title)
                    items[it.id] = Item(it.id, title, it.genres, summary)  # the title's accents restored
                    continue
                (ambiguous if hits else unmatched).append(f"{it.id} {it.title!r}")
            else:
                unmatched.append(f"{it.id} {it.title!r}")
        items[it.id] = Item(it.id, it.title, it.genres, summary)
    titles: dict[str, list[str]] = defaultdict(list)
    for it in cat.items.values():
        titles[it.title].append(it.id)
    report = {"summaries_file": str(p), "summaries": len(rows), "items": len(cat),
              "matched": n_exact + n_key + n_lost, "matched_exact": n_exact, "matched_by_normalised_title": n_key,
              "matched_where_accents_were_lost": n_lost,
              "unmatched_items": len(unmatched), "ambiguous_items": len(ambiguous),
              "unused_summaries": sorted({t for t, s in rows if s} - used),
              "titles_under_several_ids": {t: ids for t, ids in titles.items() if len(ids) > 1},
              "unmatched_examples": unmatched[:20], "ambiguous_examples": ambiguous[:20]}
    return Catalogue(items, cat.source, report)


def read_generic_items(path: str | Path) -> Catalogue:
    """CSV or JSONL with `id` and `text` (optional `title`, `genres` as `a|b`)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: item catalogue not found")
    problems: list[str] = []
    fmt = "jsonl" if p.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"
    rows = list(table_rows(p, fmt, problems, "a JSON object with id and text"))
    items: dict[str, Item] = {}
    for i, r in rows:
        iid, text = str(r.get("id") or "").strip(), str(r.get("text") or "").strip()
        if not iid or not text:
            problems.append(f"{p}:{i}: field {'id' if not iid else 'text'!r} is missing or empty")
            continue
        if iid in items:
            problems.append(f"{p}:{i}: item id {iid!r} appears twice")
            continue
        g = r.get("genres") or ()
        genres = tuple(x.strip() for x in (g.split("|") if isinstance(g, str) else g) if str(x).strip())
        title = str(r.get("title") or "").strip()
        # without a title, the text is the whole description
        items[iid] = Item(iid, title or text, genres, text if title else None)
    if problems:
        raise DataError(join_problems(f"{p}: {len(problems)} problem(s) in the catalogue:", problems))
    if not items:
        raise DataError(f"{p}: no items")
    return Catalogue(items, str(p))


def read_catalogue(path: str | Path, summaries: str | Path | None = None) -> Catalogue:
    """u.item-style files by their `|` layout, anything else as a generic id/text file."""
    p = Path(path)
    generic = p.suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json")
    cat = read_generic_items(p) if generic else read_movielens_items(p)
    return join_summaries(cat, summaries) if summaries else cat


def load_catalogue_jsonl(path: Path) -> Catalogue:
    """The catalogue a recommender folder stores (written by `Catalogue.to_jsonl`)."""
    items = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        items[r["id"]] = Item(r["id"], r["title"], tuple(r["genres"]), r.get("summary"))
    return Catalogue(items, str(path))
