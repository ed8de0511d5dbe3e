"""`trustfit audit KIND`: one subcommand per audit; each writes result.json, report.md and plots
into --out (default MODEL/audits/KIND/), the files the model card reads."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from trustfit.cli.common import app, fail
from trustfit.errors import TrustfitError

# options every audit subcommand that takes them declares the same way
TEXT_COLUMN = typer.Option(None, "--text-column", help="classify (default: as trained)")
FORMAT = typer.Option("auto", "--format", help="classify: auto, csv, tsv, jsonl or fpb")
QUIET = typer.Option(False, "--quiet", "-q")
LIMIT = typer.Option(None, "--limit", help="audit only the first N examples")
RESAMPLES = typer.Option(1000, "--resamples", help="bootstrap resamples for the intervals")

audit_app = typer.Typer(no_args_is_help=True, help="Audit a trained model: robustness, explain, fairness, privacy.")
app.add_typer(audit_app, name="audit")


@audit_app.command("explain")
def audit_explain(
    model: str = typer.Option(..., "--model", help="trained model folder"),
    data: str = typer.Option(..., "--data", help="CoNLL file (NER) or CSV/TSV/JSONL/FPB file (classify)"),
    n: int = typer.Option(200, "--n", help="predictions to explain (entities for NER, texts to classify)"),
    methods: str = typer.Option("ig,gxi,shap,lime,random", "--methods", help="comma-separated methods"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: MODEL/audits/explain)"),
    seed: int = typer.Option(0, "--seed"),
    samples: Optional[int] = typer.Option(None, "--samples", help="budget of ig / shap / lime (their defaults)"),
    text_column: Optional[str] = TEXT_COLUMN,
    format: str = FORMAT,
    quiet: bool = QUIET,
) -> None:
    """Score each explanation method's faithfulness, stability and cost on N predictions."""
    from trustfit.auditing import default_audit_dir
    from trustfit.explain.audit import report_markdown, run_explain_audit

    try:
        names = [m.strip() for m in methods.split(",") if m.strip()]
        if not names:
            raise TrustfitError("--methods is empty; name one or more of ig, gxi, shap, lime, random")
        if not Path(data).exists():
            raise TrustfitError(f"{data}: no such file")
        dest = out or default_audit_dir(model, "explain")
        result = run_explain_audit(model, data, dest, names, n=n, seed=seed, samples=samples,
                                   text_column=text_column, format=format, quiet=quiet)
    except TrustfitError as e:
        fail(e)
    if not quiet:
        typer.echo(report_markdown(result))
    typer.echo(f"explain audit written to {dest}", err=True)


@audit_app.command("robustness")
def audit_robustness(
    model: str = typer.Option(..., "--model", help="trained model folder"),
    data: str = typer.Option(..., "--data", help="labelled CoNLL file (NER) or CSV/TSV/JSONL/FPB file (classify)"),
    families: Optional[str] = typer.Option(None, "--families",
                                           help="comma-separated families, each optionally with options "
                                                "(typo:max_words=3); default: all for the model's task"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: MODEL/audits/robustness)"),
    seed: int = typer.Option(0, "--seed"),
    inventory: Optional[str] = typer.Option(None, "--inventory",
                                            help="NER: labelled CoNLL file whose mentions entity-swap draws from "
                                                 "(default: the model's training file)"),
    write_examples: bool = typer.Option(False, "--write-examples", help="write the perturbed data to OUT/examples/"),
    limit: Optional[int] = LIMIT,
    resamples: int = RESAMPLES,
    text_column: Optional[str] = TEXT_COLUMN,
    format: str = FORMAT,
    quiet: bool = QUIET,
) -> None:
    """Clean vs perturbed scores per perturbation family, attack success rates and their constraints."""
    from trustfit.auditing import default_audit_dir
    from trustfit.robust.audit import report_markdown, run_robustness_audit
    from trustfit.robust.perturb import split_families

    try:
        if not Path(data).exists():
            raise TrustfitError(f"{data}: no such file")
        if limit is not None and limit < 1:
            raise TrustfitError("--limit must be 1 or more")
        dest = out or default_audit_dir(model, "robustness")
        result = run_robustness_audit(model, data, dest, split_families(families) if families else None, seed=seed,
                                      inventory=inventory, write_examples=write_examples, text_column=text_column,
                                      format=format, limit=limit, resamples=resamples, quiet=quiet)
    except TrustfitError as e:
        fail(e)
    if not quiet:
        typer.echo(report_markdown(result))
    typer.echo(f"robustness audit written to {dest}", err=True)


def _split_list(value: Optional[str]) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


@audit_app.command("fairness")
def audit_fairness(
    model: str = typer.Option(..., "--model", help="trained model folder"),
    data: str = typer.Option(..., "--data", help="labelled CoNLL file (NER) or CSV/TSV/JSONL/FPB file (classify)"),
    group_column: Optional[list[str]] = typer.Option(None, "--group-column",
                                                     help="sensitive-attribute column (repeat for intersections)"),
    group_terms: Optional[str] = typer.Option(None, "--group-terms",
                                              help="group each example by the terms it mentions: gender,names,... "
                                                   "or a term list file"),
    swaps: Optional[str] = typer.Option(None, "--swaps", help="counterfactual swap lists (default "
                                        "gender,names,religion,nationality; 'none' for none; files allowed)"),
    templates: bool = typer.Option(False, "--templates", help="also score the project's template suites"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: MODEL/audits/fairness)"),
    seed: int = typer.Option(0, "--seed"),
    resamples: int = RESAMPLES,
    min_group_size: int = typer.Option(30, "--min-group-size", help="no interval for groups smaller than this"),
    positive_label: Optional[str] = typer.Option(None, "--positive-label",
                                                 help="classify: label whose probability and rates are compared "
                                                      "(default: 'positive' if the model has it, else the last label)"),
    limit: Optional[int] = LIMIT,
    text_column: Optional[str] = TEXT_COLUMN,
    format: str = FORMAT,
    quiet: bool = QUIET,
) -> None:
    """Group metrics with intervals, counterfactual identity swaps and template suites."""
    from trustfit.auditing import default_audit_dir
    from trustfit.fairness.audit import run_fairness_audit
    from trustfit.fairness.report import report_markdown

    try:
        if not Path(data).exists():
            raise TrustfitError(f"{data}: no such file")
        if resamples < 100:
            raise TrustfitError("--resamples must be 100 or more for a 95 % interval")
        if min_group_size < 2:
            raise TrustfitError("--min-group-size must be 2 or more")
        dest = out or default_audit_dir(model, "fairness")
        swap_lists = None if swaps is None else [s for s in _split_list(swaps) if s != "none"]
        result = run_fairness_audit(model, data, dest, group_columns=group_column or [],
                                    group_terms=_split_list(group_terms), swaps=swap_lists, templates=templates,
                                    seed=seed, resamples=resamples, min_group_size=min_group_size,
                                    positive_label=positive_label, text_column=text_column, format=format,
                                    limit=limit, quiet=quiet)
    except TrustfitError as e:
        fail(e)
    for note in result["notes"]:
        typer.echo(f"note: {note}", err=True)
    if not quiet:
        typer.echo(report_markdown(result))
    typer.echo(f"fairness audit written to {dest}", err=True)


@audit_app.command("privacy")
def audit_privacy(
    model: str = typer.Option(..., "--model", help="trained model folder"),
    train: str = typer.Option(..., "--train", help="the file the model was trained on (members are drawn from it)"),
    holdout: str = typer.Option(..., "--holdout", help="labelled data the model never saw (non-members; half of it "
                                "trains the reference model)"),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder (default: MODEL/audits/privacy)"),
    reference: Optional[str] = typer.Option(None, "--reference", help="reference model folder for the calibrated "
                                            "attack (default: trained here on half the holdout; none: skip)"),
    candidates: int = typer.Option(1000, "--candidates", help="random candidates each canary is ranked among"),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(64, "--batch-size"),
    limit: Optional[int] = LIMIT,
    resamples: int = RESAMPLES,
    quiet: bool = QUIET,
) -> None:
    """Membership inference (loss threshold and reference-calibrated: ROC AUC, TPR at 1 % / 0.1 % FPR)
    and canary exposure, reported with the model's DP guarantee."""
    from trustfit.auditing import default_audit_dir
    from trustfit.privacy.audit import run_privacy_audit
    from trustfit.privacy.report import report_markdown

    try:
        for path in (train, holdout):
            if not Path(path).exists():
                raise TrustfitError(f"{path}: no such file")
        dest = out or default_audit_dir(model, "privacy")
        result = run_privacy_audit(model, train, holdout, str(dest), reference=reference, limit=limit,
                                   candidates=candidates, resamples=resamples, seed=seed, batch_size=batch_size,
                                   quiet=quiet)
    except TrustfitError as e:
        fail(e)
    if not quiet:
        typer.echo(report_markdown(result))
    typer.echo(f"privacy audit written to {dest}", err=True)
