"""CoNLL column-file reader (CoNLL-2003 4 columns, WNUT token<TAB>tag, any token/tag columns).

Handles the traps of real files: whitespace-only sentence separators (WNUT's tab lines),
U+FEFF byte-order marks inside the file and glued to tokens, CRLF endings, -DOCSTART-
document boundaries (kept as doc_id), and reports every malformed line with its number."""

from __future__ import annotations

from pathlib import Path

from trustfit.data.schema import Corpus, Sentence
from trustfit.data.tags import check_scheme, convert_tags, tag_problem
from trustfit.errors import DataError, join_problems

DOCSTART = "-DOCSTART-"
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060"), None)


def resolve_delimiter(name: str | None) -> str | None:
    """A --delimiter value as a separator: 'tab' or '\\t' -> TAB, 'space' -> ' ', None -> any
    whitespace, anything else as given."""
    return {"tab": "\t", "\\t": "\t", "space": " "}.get(name or "", name)


def _decode(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: cannot decode byte {data[e.start:e.start + 1]!r} as {encoding}. "
            f"Convert the file to UTF-8 or pass the right --encoding (e.g. latin-1)."
        ) from None


def read_conll(
    path: str | Path,
    token_column: int = 0,
    tag_column: int | None = -1,
    scheme: str = "iob2",
    encoding: str = "utf-8",
    delimiter: str | None = None,
) -> Corpus:
    """Read a CoNLL column file into a Corpus with IOB2 tags.

    `tag_column=None` reads an unlabelled file (tokens only). `delimiter=None` splits columns on
    any whitespace; pass "\\t" for files whose tokens may contain spaces."""
    path = Path(path)
    scheme = check_scheme(scheme)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a CoNLL file")
    text = _decode(path, encoding)
    if encoding.lower().replace("-", "") == "utf8" and text.startswith("\ufeff"):
        text = text[1:]

    problems: list[str] = []
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start_line = 0
    doc_id = 0
    n_columns: int | None = None
    need = max(token_column if token_column >= 0 else -token_column - 1,
               (tag_column if tag_column >= 0 else -tag_column - 1) if tag_column is not None else 0) + 1

    def flush() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append(
                Sentence(
                    tokens=tokens,
                    tags=convert_tags(tags, scheme) if tag_column is not None else None,
                    doc_id=doc_id,
                    source=str(path),
                    line=start_line,
                )
            )
        tokens, tags = [], []

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.translate(_INVISIBLE)
        if not line.strip():
            flush()
            continue
        cols = line.split(delimiter) if delimiter else line.split()
        if delimiter:
            cols = [c.strip() for c in cols]
        if cols[0] == DOCSTART:
            flush()
            if sentences:
                doc_id += 1
            continue
        if n_columns is None:
            n_columns = len(cols)
            if n_columns < need:
                problems.append(
                    f"{path}:{lineno}: expected at least {need} columns (token column {token_column}, "
                    f"tag column {tag_column}), found {len(cols)}: {raw!r}. Check --token-column/--tag-column."
                )
                n_columns = need
        if len(cols) != n_columns:
            what = "a missing tag?" if len(cols) < n_columns else "a token with a space inside? (try --delimiter tab)"
            problems.append(
                f"{path}:{lineno}: expected {n_columns} columns like the first line, found {len(cols)} "
                f"({what}): {raw!r}"
            )
            continue
        if not tokens:
            start_line = lineno
        tokens.append(cols[token_column])
        if tag_column is not None:
            tag = cols[tag_column]
            why = tag_problem(tag, scheme)
            if why:
                problems.append(f"{path}:{lineno}: {why}: {raw!r}. Use --scheme to name the file's scheme.")
                tag = "O"
            tags.append(tag)
    flush()
    has_documents = any(line.translate(_INVISIBLE).split()[:1] == [DOCSTART] for line in text.splitlines())

    if problems:
        raise DataError(join_problems(f"{path}: {len(problems)} malformed lines", problems))
    if not sentences:
        raise DataError(f"{path}: no sentences found (the file is empty or holds only -DOCSTART- lines)")
    return Corpus(sentences, source=str(path), has_documents=has_documents)
