"""What every command module shares: the Typer app, the error exit, model metadata and line
readers."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from trustfit.errors import TrustfitError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fine-tune Hugging Face encoders for NER and classification, evaluate, predict, explain and "
                       "audit them.")


class Task(str, Enum):
    ner = "ner"
    classify = "classify"


def fail(e: TrustfitError) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


def model_meta(model: str) -> dict:
    from trustfit.models.backbone import read_meta, resolve_model_source

    return read_meta(resolve_model_source(model))


def model_task(model: str) -> str:
    from trustfit.models.backbone import model_task as task_of

    return task_of(model)


def read_lines(input: str, encoding: str) -> list[str]:
    if input == "-":
        return sys.stdin.read().splitlines()
    p = Path(input)
    if not p.exists():
        raise TrustfitError(f"{input}: no such file")
    try:
        return p.read_text(encoding=encoding).splitlines()
    except UnicodeDecodeError as e:
        raise TrustfitError(f"{input}: not {encoding} text ({e.reason} at byte {e.start}); pass --encoding") from None


def text_lines_corpus(input: str, encoding: str, what: str):
    """One classification input per line; an empty line is an error naming its number."""
    from trustfit.data.text import TextCorpus, TextExample

    lines = read_lines(input, encoding)
    empty = [i for i, l in enumerate(lines, 1) if not l.strip()]
    if empty:
        raise TrustfitError(f"{input}: lines {', '.join(map(str, empty[:10]))} are empty; "
                            f"give one non-empty {what} per line")
    return TextCorpus([TextExample(l.strip(), None, None, i, input) for i, l in enumerate(lines, 1)], input)
