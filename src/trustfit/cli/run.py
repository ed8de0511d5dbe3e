"""`trustfit run experiment.toml` (the whole pipeline) and `trustfit report RUN_DIR` (re-render
the model card)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from trustfit.cli.common import app, fail
from trustfit.errors import TrustfitError


@app.command()
def run(
    experiment: Path = typer.Argument(..., help="experiment file (TOML, YAML or JSON)"),
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default: the file's `out`, else runs/NAME)"),
    from_stage: Optional[str] = typer.Option(None, "--from", help="re-run this stage and every later one "
                                                                   "(train, evaluate, audit, audit.explain, report)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="stage lines only, no progress bars"),
) -> None:
    """Run an experiment: train -> evaluate -> audits -> model card. Finished stages whose settings
    and inputs did not change are skipped."""
    from trustfit.report.experiment import load_experiment
    from trustfit.report.pipeline import Pipeline

    try:
        exp = load_experiment(experiment)
        run_dir = out or Path(exp.out or f"runs/{exp.name}")  # relative to the current folder
        pipeline = Pipeline(exp, run_dir, str(experiment.resolve()), from_stage, quiet,
                            echo=lambda m: typer.echo(m, err=True))
        state = pipeline.run()
    except TrustfitError as e:
        fail(e)
    failed = [k for k, v in state["stages"].items() if v.get("status") == "failed"]
    card = state["stages"].get("report", {}).get("card", {})
    if failed:
        typer.echo(f"stages that failed (recorded in the card): {', '.join(failed)}", err=True)
    typer.echo(f"model card: {card.get('html')} (also {card.get('markdown')}, {card.get('json')})")


@app.command()
def report(
    folder: Path = typer.Argument(..., help="run folder of `trustfit run`, or a trained model folder"),
    out: Optional[Path] = typer.Option(None, "--out", help="where to write the card (default: FOLDER/card)"),
) -> None:
    """Re-render the model card (README.md, card.html, card.json) from what a folder holds."""
    from trustfit.report.card import write_card

    try:
        paths = write_card(folder, out=out)
    except TrustfitError as e:
        fail(e)
    typer.echo(f"model card: {paths['html']} (also {paths['markdown']}, {paths['json']})")
