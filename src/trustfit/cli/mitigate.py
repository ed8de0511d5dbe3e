"""`trustfit mitigate`: post-training mitigations stored with the model (training-time ones,
such as counterfactual augmentation, are options of `trustfit train`)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from trustfit.cli.common import app, fail
from trustfit.errors import TrustfitError

mitigate_app = typer.Typer(no_args_is_help=True, help="Mitigate a measured unfairness of a trained model.")
app.add_typer(mitigate_app, name="mitigate")


@mitigate_app.command("thresholds")
def mitigate_thresholds(
    model: str = typer.Option(..., "--model", help="trained classification model folder"),
    data: str = typer.Option(..., "--data", help="labelled file with the group column (e.g. dev) to fit on"),
    group_column: str = typer.Option(..., "--group-column", help="the sensitive attribute known at prediction time"),
    constraint: str = typer.Option("demographic_parity", "--constraint",
                                   help="demographic_parity, equalized_odds, true_positive_rate_parity, ..."),
    positive_label: Optional[str] = typer.Option(None, "--positive-label", help="default: 'positive' or the last label"),
    eval_data: Optional[str] = typer.Option(None, "--eval", help="labelled file to report before/after on "
                                            "(default: --data itself, in-sample)"),
    text_column: Optional[str] = typer.Option(None, "--text-column"),
    format: str = typer.Option("auto", "--format"),
) -> None:
    """Fit Fairlearn's ThresholdOptimizer per group on the model's scores; store it with the model
    (fairness_thresholds.json), used by `trustfit predict --group`."""
    from trustfit.fairness.mitigate import THRESHOLDS_FILE, fit_group_thresholds

    try:
        rec = fit_group_thresholds(model, data, group_column, constraint, positive_label, eval_data, text_column, format)
    except TrustfitError as e:
        fail(e)
    ev = rec["evaluation"]
    typer.echo(f"{'in-sample ' if ev['in_sample'] else ''}evaluation on {ev['data']} (positive label "
               f"{rec['positive_label']!r}, constraint {rec['constraint']}):")
    typer.echo("| | accuracy | max selection-rate gap | max TPR gap | max FPR gap |\n|---|---|---|---|---|")
    for when in ("before", "after"):
        r = ev[when]
        gaps = [r["max_gap"][k] for k in ("selection_rate", "true_positive_rate", "false_positive_rate")]
        typer.echo(f"| {when} | {100 * r['accuracy']:.2f} | " + " | ".join("–" if g is None else f"{100 * g:.2f}"
                                                                          for g in gaps) + " |")
    typer.echo(json.dumps(ev["after"]["groups"], indent=1), err=True)
    typer.echo(f"thresholds written to {model}/{THRESHOLDS_FILE}", err=True)
