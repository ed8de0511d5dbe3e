"""Command line: `trustfit train | evaluate | predict` (see `trustfit COMMAND --help`)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from trustfit.errors import TrustfitError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fine-tune Hugging Face encoders for NER, evaluate them, predict with them.")


class Task(str, Enum):
    ner = "ner"
    classify = "classify"


def _fail(e: TrustfitError) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


@app.command()
def train(
    train: Optional[str] = typer.Option(None, "--train", help="training file (CoNLL columns)"),
    dev: Optional[str] = typer.Option(None, "--dev", help="dev file for evaluation, early stopping and best model"),
    out: Optional[str] = typer.Option(None, "--out", help="output folder (HF model + reports + checkpoints)"),
    task: Optional[Task] = typer.Option(None, "--task", help="ner (default) or classify"),
    model: Optional[str] = typer.Option(None, "--model", help="HF folder or hub id (default: packaged all-MiniLM-L6-v2)"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/YAML file with any of these options"),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto (bf16 where native), fp32 or bf16"),
    context_tokens: Optional[int] = typer.Option(None, "--context-tokens", help="document context per side (0 = off)"),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="encoder input limit (default: model's)"),
    pack: Optional[bool] = typer.Option(None, "--pack/--no-pack",
                                        help="NER: pack consecutive sentences of a document into one input"),
    pack_tokens: Optional[int] = typer.Option(None, "--pack-tokens", help="NER: target sub-tokens per packed input"),
    scheme: Optional[str] = typer.Option(None, "--scheme", help="iob1, iob2, bioes or bilou"),
    token_column: Optional[int] = typer.Option(None, "--token-column"),
    tag_column: Optional[int] = typer.Option(None, "--tag-column"),
    encoding: Optional[str] = typer.Option(None, "--encoding"),
    delimiter: Optional[str] = typer.Option(None, "--delimiter", help="column separator: tab (default: whitespace)"),
    unknown_tags: Optional[str] = typer.Option(None, "--unknown-tags", help="error (default) or o"),
    format: Optional[str] = typer.Option(None, "--format", help="classify: auto, csv, tsv, jsonl or fpb"),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="classify: text column (text)"),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="classify: label column (label)"),
    pair_column: Optional[str] = typer.Option(None, "--pair-column", help="classify: second text column"),
    class_weights: Optional[bool] = typer.Option(None, "--class-weights/--no-class-weights",
                                                 help="classify: inverse-frequency class weights in the loss"),
    calibrate: Optional[bool] = typer.Option(None, "--calibrate/--no-calibrate",
                                             help="classify: fit temperature scaling on dev"),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="steps between evaluations (default: epoch)"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every"),
    patience: Optional[int] = typer.Option(None, "--patience", help="early stopping patience (evaluations)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace whatever --out holds"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar or tables"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the training summary here"),
) -> None:
    """Fine-tune a pretrained encoder; the best dev model is saved in --out in HF format."""
    from trustfit.config import build_config
    from trustfit.train.run import train as run_training

    try:
        cfg = build_config(config, dict(
            task=task.value if task else None, train=train, dev=dev, out=out, model=model, epochs=epochs, max_steps=max_steps,
            batch_size=batch_size, lr=lr, seed=seed, precision=precision, context_tokens=context_tokens,
            max_length=max_length, pack=pack, pack_tokens=pack_tokens, scheme=scheme, token_column=token_column, tag_column=tag_column,
            encoding=encoding, delimiter=delimiter, unknown_tags=unknown_tags, eval_every=eval_every,
            checkpoint_every=checkpoint_every, patience=patience, format=format, text_column=text_column,
            label_column=label_column, pair_column=pair_column, class_weights=class_weights, calibrate=calibrate))
        summary = run_training(cfg, resume=resume, overwrite=overwrite, quiet=quiet)
    except TrustfitError as e:
        _fail(e)
    if json_out:
        json_out.write_text(json.dumps(summary, indent=2))
    if not quiet and "dev" in summary:
        _render(summary["task"], summary["dev"])
    typer.echo(f"model saved to {summary['out']} ({summary['steps']} steps, "
               f"{summary['words_per_second']:.0f} words/s)", err=True)


def _render(task: str, metrics: dict) -> None:
    if task == "classify":
        from trustfit.evaluate.classify import ClassifyMetrics, render_classify

        fields = ClassifyMetrics.__dataclass_fields__
        render_classify(ClassifyMetrics(**{k: v for k, v in metrics.items() if k in fields}))
    else:
        from trustfit.evaluate.ner import NerMetrics, render_metrics

        render_metrics(NerMetrics(**metrics))


def _model_task(model: str) -> str:
    return _meta(model).get("task", "ner")


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", help="trained model folder"),
    data: str = typer.Option(..., "--data", help="labelled file (CoNLL for NER; CSV/TSV/JSONL/FPB to classify)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write metrics JSON here"),
    predictions: Optional[Path] = typer.Option(None, "--predictions",
                                               help="NER: `token gold pred` lines; classify: JSONL per row"),
    plots: Optional[Path] = typer.Option(None, "--plots", help="classify: folder for confusion/reliability PNGs"),
    scheme: str = typer.Option("iob2", "--scheme"),
    token_column: int = typer.Option(0, "--token-column"),
    tag_column: int = typer.Option(-1, "--tag-column"),
    encoding: Optional[str] = typer.Option(None, "--encoding"),
    delimiter: Optional[str] = typer.Option(None, "--delimiter"),
    unknown_tags: str = typer.Option("error", "--unknown-tags", help="error (default) or o"),
    format: str = typer.Option("auto", "--format", help="classify: auto, csv, tsv, jsonl or fpb"),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="classify (default: as trained)"),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="classify (default: as trained)"),
    pair_column: Optional[str] = typer.Option(None, "--pair-column", help="classify (default: as trained)"),
    batch_size: int = typer.Option(64, "--batch-size"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Score a trained model on a labelled file: entity- and token-level reports (NER), or
    accuracy, macro-F1, per class, confusion matrix and calibration (classification)."""
    try:
        task = _model_task(model)
        if task == "classify":
            from trustfit.evaluate.classify import classify_metrics, plot_confusion, plot_reliability
            from trustfit.predict.classify import ClassifierPredictor
            from trustfit.tasks.classify import check_labels
            from trustfit.data.text import read_text_corpus

            predictor = ClassifierPredictor.from_dir(model, batch_size=batch_size)
            meta = _meta(model)
            corpus = read_text_corpus(data, format=format, text_column=text_column or meta.get("text_column", "text"),
                                      label_column=label_column or meta.get("label_column", "label"),
                                      pair_column=pair_column or meta.get("pair_column"), encoding=encoding)
            check_labels(corpus, predictor.labels)
        else:
            from trustfit.data.conll import read_conll, resolve_delimiter
            from trustfit.predict.ner import NerPredictor

            predictor = NerPredictor.from_dir(model, batch_size=batch_size)
            corpus = read_conll(data, token_column=token_column, tag_column=tag_column, scheme=scheme,
                                encoding=encoding or "utf-8", delimiter=resolve_delimiter(delimiter))
            predictor.schema.check_corpus(corpus, unknown_to_o=unknown_tags == "o")
    except TrustfitError as e:
        _fail(e)
    if task == "classify":
        pred = predictor.predict(corpus)
        l2i = {l: i for i, l in enumerate(predictor.labels)}
        from trustfit.apps.router import coverage_curve, plot_coverage

        gold = [l2i[e.label] for e in corpus]
        metrics = classify_metrics(gold, pred.logits, predictor.labels, predictor.temperature)
        # the router's view: how many queries can be answered automatically at a given precision
        metrics.extra["coverage"] = coverage_curve(pred.probs, gold)
        if plots:
            plots.mkdir(parents=True, exist_ok=True)
            plot_confusion(metrics, plots / "confusion_matrix.png")
            plot_reliability(metrics, plots / "reliability.png")
            plot_coverage(metrics.extra["coverage"], plots / "coverage_accuracy.png")
        if predictions:
            with predictions.open("w", encoding="utf-8") as f:
                for i, e in enumerate(corpus):
                    lab, p = pred.top_k(i, 1)[0]
                    f.write(json.dumps({"line": e.line, "gold": e.label, "label": lab, "score": round(p, 4)},
                                       ensure_ascii=False) + "\n")
        at = metrics.extra["coverage"]["at_precision"]
        headline = (f"accuracy {100 * metrics.accuracy:.2f}, macro-F1 {100 * metrics.macro_f1:.2f}, "
                    f"answered at 95 % precision {100 * at['95']['coverage']:.1f} %, "
                    f"at 99 % {100 * at['99']['coverage']:.1f} %")
    else:
        from trustfit.evaluate.ner import ner_metrics, write_conll_predictions

        pred = predictor.predict(corpus)
        metrics = ner_metrics([s.tags for s in corpus], pred.tags, predictor.schema.labels)
        if predictions:
            write_conll_predictions(predictions, corpus.sentences, pred.tags)
        headline = f"entity F1 {100 * metrics.f1:.2f}"
    if json_out:
        json_out.write_text(json.dumps(metrics.to_json(), indent=2))
    if quiet:
        typer.echo(headline)
    else:
        _render(task, metrics.to_json())
        if task == "classify":
            typer.echo(headline)


def _meta(model: str) -> dict:
    from trustfit.models.backbone import read_meta, resolve_model_source

    return read_meta(resolve_model_source(model))


def _read_lines(input: str, encoding: str) -> list[str]:
    if input == "-":
        return sys.stdin.read().splitlines()
    p = Path(input)
    if not p.exists():
        raise TrustfitError(f"{input}: no such file")
    try:
        return p.read_text(encoding=encoding).splitlines()
    except UnicodeDecodeError as e:
        raise TrustfitError(f"{input}: not {encoding} text ({e.reason} at byte {e.start}); pass --encoding") from None


def _text_lines_corpus(input: str, encoding: str, what: str):
    """One classification input per line; an empty line is an error naming its number."""
    from trustfit.data.text import TextCorpus, TextExample

    lines = _read_lines(input, encoding)
    empty = [i for i, l in enumerate(lines, 1) if not l.strip()]
    if empty:
        raise TrustfitError(f"{input}: lines {', '.join(map(str, empty[:10]))} are empty; "
                            f"give one non-empty {what} per line")
    return TextCorpus([TextExample(l.strip(), None, None, i, input) for i, l in enumerate(lines, 1)], input)


@app.command()
def predict(
    model: str = typer.Option(..., "--model", help="trained model folder"),
    input: str = typer.Argument("-", help="input file, or - for stdin"),
    format: str = typer.Option("text", "--format",
                               help="text (one input a line), conll (NER), or csv/tsv/jsonl (classify)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL output (default: stdout)"),
    batch_size: int = typer.Option(64, "--batch-size"),
    token_column: int = typer.Option(0, "--token-column"),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="classify: column with the text"),
    top_k: int = typer.Option(3, "--top-k", help="classify: how many labels to list"),
    encoding: str = typer.Option("utf-8", "--encoding"),
) -> None:
    """Predict with a trained model: one JSON line per input line/sentence (entities for NER;
    label, probability and top-k labels for classification)."""
    from trustfit.data.conll import read_conll

    try:
        task = _model_task(model)
        if task == "classify":
            from trustfit.data.text import read_text_corpus
            from trustfit.predict.classify import ClassifierPredictor

            predictor = ClassifierPredictor.from_dir(model, batch_size=batch_size)
            if top_k < 1:
                raise TrustfitError(f"--top-k must be at least 1, got {top_k}")
            if format == "text":
                corpus = _text_lines_corpus(input, encoding, "text")
            else:
                if input == "-":
                    raise TrustfitError(f"--format {format} reads a file; give its path instead of -")
                corpus = read_text_corpus(input, format=format, text_column=text_column or "text",
                                          label_column=None, encoding=encoding)
        else:
            from trustfit.predict.ner import NerPredictor, corpus_from_lines

            predictor = NerPredictor.from_dir(model, batch_size=batch_size)
            if format == "conll":
                if input == "-":
                    raise TrustfitError("--format conll reads a file; give its path instead of -")
                corpus = read_conll(input, token_column=token_column, tag_column=None, encoding=encoding)
            elif format == "text":
                corpus = corpus_from_lines(_read_lines(input, encoding), source=input)
            else:
                raise TrustfitError(f"unknown --format {format!r} for an NER model: use text or conll")
    except TrustfitError as e:
        _fail(e)
    pred = predictor.predict(corpus)
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        if task == "classify":
            for i, e in enumerate(corpus):
                top = pred.top_k(i, top_k)
                rec = {"line": e.line, "text": e.text, "label": top[0][0], "score": round(top[0][1], 4),
                       "top_k": [{"label": l, "score": round(p, 4)} for l, p in top]}
                sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            from trustfit.predict.ner import entities_json

            for s, tags, scores in zip(corpus.sentences, pred.tags, pred.scores):
                rec = {"line": s.line, "tokens": s.tokens, "tags": tags, "entities": entities_json(s, tags, scores)}
                if s.text is not None:
                    rec = {"text": s.text, **rec}
                sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
    finally:
        if output:
            sink.close()


@app.command()
def split(
    input: str = typer.Option(..., "--input", help="labelled classification file"),
    out: Path = typer.Option(..., "--out", help="folder for train/dev/test.jsonl and split_report.json"),
    format: str = typer.Option("auto", "--format", help="auto, csv, tsv, jsonl or fpb"),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    pair_column: Optional[str] = typer.Option(None, "--pair-column"),
    encoding: Optional[str] = typer.Option(None, "--encoding"),
    dev: float = typer.Option(0.1, "--dev", help="dev fraction"),
    test: float = typer.Option(0.1, "--test", help="test fraction"),
    seed: int = typer.Option(42, "--seed"),
) -> None:
    """Deduplicate (dropping texts with conflicting labels), then write stratified, seeded splits."""
    from trustfit.data.split import split_corpus, write_splits
    from trustfit.data.text import read_text_corpus

    try:
        corpus = read_text_corpus(input, format=format, text_column=text_column, label_column=label_column,
                                  pair_column=pair_column, encoding=encoding)
        parts, report = split_corpus(corpus, dev=dev, test=test, seed=seed)
    except TrustfitError as e:
        _fail(e)
    paths = write_splits(parts, out)
    (out / "split_report.json").write_text(json.dumps({**report.to_json(), "files": paths}, indent=2))
    typer.echo(f"{report.rows_in} rows: dropped {report.duplicate_rows_dropped} duplicate rows and "
               f"{report.conflict_rows_dropped} rows of {report.conflicting_texts} texts with conflicting labels; "
               + ", ".join(f"{k} {v}" for k, v in report.sizes.items()))


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
        _fail(e)
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
        corpus = _text_lines_corpus(input, encoding, "query")
    except TrustfitError as e:
        _fail(e)
    pred = predictor.predict(corpus)
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for e, r in zip(corpus, route(pred.probs, predictor.labels, threshold, table, top_k)):
            sink.write(json.dumps({"line": e.line, "query": e.text, **r.to_json()}, ensure_ascii=False) + "\n")
    finally:
        if output:
            sink.close()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
