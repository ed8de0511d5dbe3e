"""The applications: `trustfit monitor` (sentiment surges) and `trustfit route` (answer or hand off)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from trustfit.errors import TrustfitError
from trustfit.cli.common import fail, text_lines_corpus, app


@app.command()
def monitor(
    model: str = typer.Option(..., "--model", help="trained sentiment classifier"),
    input: str = typer.Option("-", "--input", help="JSONL news stream ({time, text, topic?, source?}); - = stdin"),
    out: Path = typer.Option(Path("monitor_out"), "--out", help="folder for alerts.jsonl, summary.json, series.png"),
    negative_label: str = typer.Option("negative", "--negative-label"),
    threshold: float = typer.Option(0.5, "--threshold", help="p(negative) at which an item counts as negative"),
    window: int = typer.Option(50, "--window", help="items in the rolling window"),
    baseline: int = typer.Option(200, "--baseline", help="items before the window forming the baseline"),
    min_count: int = typer.Option(30, "--min-count"),
    min_baseline: int = typer.Option(100, "--min-baseline"),
    margin: float = typer.Option(0.2, "--margin", help="least rise of the negative share over the baseline"),
    z: float = typer.Option(3.0, "--z", help="least z-score of the rise"),
    batch_size: int = typer.Option(32, "--batch-size"),
) -> None:
    """Financial sentiment monitor: alert when negative news surges above its recent baseline
    (overall and per topic). Alerts are printed as JSON lines as they happen."""
    import select

    from trustfit.apps.monitor import MonitorRule, model_scorer, plot_series, run_monitor
    from trustfit.apps.router import check_threshold

    try:
        check_threshold(threshold)
        rule = MonitorRule(window, baseline, min_count, min_baseline, margin, z).validate()
        scorer = model_scorer(model, negative_label)
        if input == "-":
            stream, src = sys.stdin, "<stdin>"

            def ready() -> bool:
                try:
                    return bool(select.select([sys.stdin], [], [], 0)[0])
                except (ValueError, OSError):  # not a real file descriptor (tests)
                    return True
        else:
            p = Path(input)
            if not p.exists():
                raise TrustfitError(f"{input}: no such file")
            stream, src, ready = p.open(encoding="utf-8"), input, None
    except TrustfitError as e:
        fail(e)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "alerts.jsonl").open("w", encoding="utf-8") as alerts_file:
        def on_alert(a) -> None:
            line = json.dumps(a.to_json(), ensure_ascii=False)
            alerts_file.write(line + "\n")
            alerts_file.flush()
            typer.echo(line)

        res = run_monitor(stream, scorer, rule, threshold, batch_size, src, on_alert=on_alert,
                          on_skip=lambda msg: typer.echo(msg, err=True), ready=ready)
    summary = {"items": res.items, "skipped": len(res.skipped), "skipped_lines": res.skipped,
               "alerts": len(res.alerts), "per_topic": res.per_topic, "rule": rule.__dict__, "threshold": threshold}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_series(res, out / "series.png", rule)
    typer.echo(f"{res.items} items, {len(res.skipped)} skipped, {len(res.alerts)} alerts; see {out}", err=True)


@app.command("route")
def route_cmd(
    model: str = typer.Option(..., "--model", help="trained intent classifier"),
    input: str = typer.Argument("-", help="queries, one a line; - = stdin"),
    answers: Optional[Path] = typer.Option(None, "--answers", help="YAML/JSON: intent -> reply template"),
    threshold: float = typer.Option(0.5, "--threshold", help="below this confidence, hand off to a human"),
    top_k: int = typer.Option(3, "--top-k"),
    output: Optional[Path] = typer.Option(None, "--output", "-o"),
    encoding: str = typer.Option("utf-8", "--encoding"),
) -> None:
    """Customer-service router: answer with the intent's reply when confident, else hand off."""
    from trustfit.apps.router import check_threshold, load_answers, route
    from trustfit.predict.classify import ClassifierPredictor

    try:
        check_threshold(threshold)
        predictor = ClassifierPredictor.from_dir(model)
        table = load_answers(answers, predictor.labels) if answers else None
        corpus = text_lines_corpus(input, encoding, "query")
    except TrustfitError as e:
        fail(e)
    pred = predictor.predict(corpus)
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for e, r in zip(corpus, route(pred.probs, predictor.labels, threshold, table, top_k)):
            sink.write(json.dumps({"line": e.line, "query": e.text, **r.to_json()}, ensure_ascii=False) + "\n")
    finally:
        if output:
            sink.close()
