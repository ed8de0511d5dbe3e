"""`trustfit scan`: personal data in a data file, with an optional redacted copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from trustfit.cli.common import app, fail
from trustfit.errors import TrustfitError


@app.command()
def scan(
    file: str = typer.Argument(..., help="CoNLL, CSV, TSV, JSONL or plain-text file"),
    redact: Optional[Path] = typer.Option(None, "--redact", help="write a copy with [EMAIL], [PHONE], [CARD], "
                                          "[IBAN], [PER] in place of what was found"),
    ner_model: Optional[str] = typer.Option(None, "--ner-model", help="trustfit NER model: also find person names"),
    format: str = typer.Option("auto", "--format", help="auto, conll, csv, tsv, jsonl or text"),
    region: str = typer.Option("US", "--region", help="region for phone numbers written without a country code"),
    encoding: str = typer.Option("utf-8", "--encoding"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write every finding as JSON here"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="counts only"),
) -> None:
    """Find e-mail addresses, phone numbers, card numbers (Luhn), IBANs and, with --ner-model,
    person names; print counts by kind and file:line locations."""
    from trustfit.privacy.scan import Scanner

    try:
        result = Scanner(region, ner_model, encoding).scan(file, format, redact)
    except TrustfitError as e:
        fail(e)
    if json_out:
        json_out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    if not quiet:
        for f in result["findings"]:
            where = f"{result['file']}:{f['line']}" + (f" [{f['field']}]" if f["field"] else "")
            typer.echo(f"{where}: {f['kind']} {f['value']!r}")
    counts = ", ".join(f"{k} {v}" for k, v in result["counts"].items())
    typer.echo(f"{result['file']} ({result['format']}): {counts}" + (f"; redacted copy: {redact}" if redact else ""),
               err=True)
