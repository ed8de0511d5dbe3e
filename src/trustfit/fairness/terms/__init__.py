"""The project's own identity-term lists (one documented text file each) and their reader.

Two kinds, both line-based, `#` for comments, `|` between fields; headers `# kind:` and
`# groups:` say how to read the rest:

- `aligned`: one term per group on each line (gender.txt, religion.txt, nationality.txt); a
  swap to group G replaces a term by the one on its line in G's column;
- `names`: `group | gender | part | name` (names.txt); a swap to group G draws a first name of
  the same gender and a surname from G.

A user's own list in either format is passed by path wherever a built-in name is accepted."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trustfit.errors import DataError

TERMS_DIR = Path(__file__).parent
BUILTIN = ("gender", "names", "religion", "nationality")
KINDS = ("aligned", "names")
GENDERS = ("female", "male", "-")
PARTS = ("first", "last")


@dataclass
class TermList:
    """A parsed list: its name, kind, groups and, per kind, aligned rows or names by group."""

    name: str
    kind: str
    groups: list[str]
    source: str
    rows: list[tuple[str, ...]] = field(default_factory=list)  # aligned: one term per group
    first_names: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # names: group -> gender -> names
    last_names: dict[str, list[str]] = field(default_factory=dict)  # names: group -> surnames

    def n_terms(self) -> int:
        if self.kind == "aligned":
            return len(self.rows)
        return sum(len(v) for g in self.first_names.values() for v in g.values()) + sum(map(len, self.last_names.values()))


def resolve_term_list(spec: str) -> Path:
    """A built-in list name (gender, names, religion, nationality) or the path of a list file."""
    if spec in BUILTIN:
        return TERMS_DIR / f"{spec}.txt"
    p = Path(spec)
    if p.exists():
        return p
    raise DataError(f"unknown term list {spec!r}: use one of {', '.join(BUILTIN)} or the path of a term list file "
                    f"(format: {TERMS_DIR / 'gender.txt'} or {TERMS_DIR / 'names.txt'})")


def load_term_list(spec: str) -> TermList:
    """Read a term list; every malformed line is reported with file and line number at once."""
    path = resolve_term_list(spec)
    name = spec if spec in BUILTIN else path.stem
    header: dict[str, str] = {}
    body: list[tuple[int, str]] = []
    for i, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            key, sep, value = line.lstrip("#").partition(":")
            if sep and key.strip() in ("kind", "groups", "columns") and not body:
                header[key.strip()] = value.strip()
            continue
        if line:
            body.append((i, line))
    kind = header.get("kind")
    if kind not in KINDS:
        raise DataError(f"{path}: the header needs '# kind: aligned' or '# kind: names' before the first term "
                        f"(found {kind!r})")
    groups = [g.strip() for g in header.get("groups", "").split("|") if g.strip()]
    if len(groups) < 2 or len(set(groups)) != len(groups):
        raise DataError(f"{path}: the header needs '# groups: a | b [| ...]' with two or more distinct groups "
                        f"(found {header.get('groups')!r})")
    out = TermList(name, kind, groups, str(path))
    problems: list[str] = []
    for i, line in body:
        fields = [f.strip() for f in line.split("|")]
        if kind == "aligned":
            if len(fields) != len(groups) or not all(fields):
                problems.append(f"{path}:{i}: expected {len(groups)} non-empty terms separated by '|' "
                                f"(one per group: {' | '.join(groups)}), found {len(fields)}: {line!r}")
                continue
            out.rows.append(tuple(fields))
        else:
            if len(fields) != 4:
                problems.append(f"{path}:{i}: expected 'group | gender | part | name' (4 fields), found "
                                f"{len(fields)}: {line!r}")
                continue
            group, gender, part, value = fields
            if group not in groups:
                problems.append(f"{path}:{i}: group {group!r} is not in the header's groups ({', '.join(groups)})")
            elif gender not in GENDERS:
                problems.append(f"{path}:{i}: gender {gender!r} must be one of {', '.join(GENDERS)}")
            elif part not in PARTS:
                problems.append(f"{path}:{i}: part {part!r} must be 'first' or 'last'")
            elif not value or " " in value:
                problems.append(f"{path}:{i}: the name must be one word (use '-' inside a name: Al-Sayed): {value!r}")
            elif part == "first":
                out.first_names.setdefault(group, {}).setdefault(gender, []).append(value)
            else:
                out.last_names.setdefault(group, []).append(value)
    if problems:
        from trustfit.errors import join_problems

        raise DataError(join_problems(f"{path}: {len(problems)} malformed lines", problems))
    if kind == "aligned" and not out.rows:
        raise DataError(f"{path}: no terms (one line per set of aligned terms, '|' between groups)")
    if kind == "names":
        missing = [g for g in groups if not out.first_names.get(g) or not out.last_names.get(g)]
        if missing:
            raise DataError(f"{path}: groups without first names or surnames: {', '.join(missing)} (each group "
                            "needs both to build full names)")
    return out
