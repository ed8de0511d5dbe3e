"""`trustfit predict` and `trustfit split`: inference on files or stdin, and deduplicated data splits."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from trustfit.errors import TrustfitError
from trustfit.cli.common import fail, model_task, read_lines, text_lines_corpus, app


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
    decode: Optional[str] = typer.Option(None, "--decode", help="NER: viterbi or argmax (default: as trained)"),
    runtime: str = typer.Option("torch", "--runtime", help="torch (bf16 where native, else fp32), int8 (dynamic "
                                "int8 linear layers), onnx (ONNX Runtime) or onnx-int8; speed and F1 of each: bench/RESULTS.md"),
    group: Optional[str] = typer.Option(None, "--group", help="classify: the group of every input, to apply the "
                                        "model's fairness thresholds (trustfit mitigate thresholds)"),
    group_column: Optional[str] = typer.Option(None, "--group-column", help="classify, csv/tsv/jsonl input: the "
                                               "column holding each row's group, for the fairness thresholds"),
) -> None:
    """Predict with a trained model: one JSON line per input line/sentence (entities for NER;
    label, probability and top-k labels for classification)."""
    from trustfit.data.conll import read_conll

    groups = None
    try:
        task = model_task(model)
        if task == "classify":
            from trustfit.data.text import read_text_corpus
            from trustfit.predict.classify import ClassifierPredictor

            if decode:
                raise TrustfitError("--decode applies to NER models only (a classifier's label is its argmax)")
            predictor = ClassifierPredictor.from_dir(model, batch_size=batch_size)
            if top_k < 1:
                raise TrustfitError(f"--top-k must be at least 1, got {top_k}")
            if format == "text":
                corpus = text_lines_corpus(input, encoding, "text")
            else:
                if input == "-":
                    raise TrustfitError(f"--format {format} reads a file; give its path instead of -")
                corpus = read_text_corpus(input, format=format, text_column=text_column or "text",
                                          label_column=None, encoding=encoding)
            groups = _groups_of(corpus, group, group_column) if group or group_column else None
        else:
            if group or group_column:
                raise TrustfitError("--group / --group-column apply to classification models only")
            from trustfit.predict.ner import NerPredictor, corpus_from_lines

            predictor = NerPredictor.from_dir(model, batch_size=batch_size, **({"decode": decode} if decode else {}))
            if format == "conll":
                if input == "-":
                    raise TrustfitError("--format conll reads a file; give its path instead of -")
                corpus = read_conll(input, token_column=token_column, tag_column=None, encoding=encoding)
            elif format == "text":
                corpus = corpus_from_lines(read_lines(input, encoding), source=input)
            else:
                raise TrustfitError(f"unknown --format {format!r} for an NER model: use text or conll")
        from trustfit.predict.runtime import use_runtime

        use_runtime(predictor, runtime)
        if task == "ner":
            _fp32_hint(predictor, runtime, corpus.n_words)
    except TrustfitError as e:
        fail(e)
    pred = predictor.predict(corpus)
    if task == "classify" and groups is not None:
        try:
            pred = _with_group_thresholds(model, pred, corpus, groups)
        except TrustfitError as e:
            fail(e)
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        if task == "classify":
            from trustfit.predict.classify import classify_record

            for i, e in enumerate(corpus):
                rec = {"line": e.line, **classify_record(e.text, pred, i, top_k)}
                if groups is not None:
                    rec.update(group=groups[i], label=pred.labels[pred.decided[i]], decided_by="group thresholds")
                sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            from trustfit.predict.ner import ner_record

            for s, tags, scores in zip(corpus.sentences, pred.tags, pred.scores):
                sink.write(json.dumps(ner_record(s, tags, scores), ensure_ascii=False) + "\n")
    finally:
        if output:
            sink.close()


# words from which exporting and quantising the model (seconds) is repaid by onnx-int8's speed
HINT_MIN_WORDS = 50_000


def _fp32_hint(predictor, runtime: str, n_words: int) -> None:
    """On a CPU without native bf16 PyTorch predicts in fp32: name, once and on stderr, the runtime
    that predicts at fp32's entity F1 about twice as fast there, when the input is large enough."""
    on_cpu_fp32 = predictor.precision == "fp32" and predictor.device.type == "cpu"
    if runtime != "torch" or not on_cpu_fp32 or n_words < HINT_MIN_WORDS:
        return
    typer.echo("tip: this CPU has no native bf16, so PyTorch predicts in fp32; --runtime onnx-int8 (ONNX Runtime with "
               "int8 weights per channel; pip install 'trustfit[onnx]') predicted CoNLL-2003 at fp32's entity F1 "
               "(-0.1) about 2x faster, 4.4x the pipeline against 2.1x (bench/RESULTS.md)", err=True)


def _groups_of(corpus, group: str | None, group_column: str | None) -> list[str]:
    if group and group_column:
        raise TrustfitError("give --group (one group for every input) or --group-column, not both")
    if group:
        return [group] * len(corpus)
    from trustfit.fairness.data import group_column_values

    return group_column_values(corpus.examples, group_column, corpus.source)


def _with_group_thresholds(model: str, pred, corpus, groups: list[str]):
    """The prediction with `decided` labels from the model's fitted group thresholds."""
    from trustfit.fairness.mitigate import THRESHOLDS_FILE, decide, load_thresholds

    rec = load_thresholds(model)
    if rec is None:
        raise TrustfitError(f"{model}: no {THRESHOLDS_FILE}; fit one first: trustfit mitigate thresholds --model "
                            f"{model} --data DEV --group-column COL")
    pos = pred.labels.index(rec["positive_label"])
    pred.decided = decide(rec["rules"], pred.probs, groups, pos, [e.text for e in corpus.examples])
    return pred


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
        fail(e)
    paths = write_splits(parts, out)
    (out / "split_report.json").write_text(json.dumps({**report.to_json(), "files": paths}, indent=2))
    typer.echo(f"{report.rows_in} rows: dropped {report.duplicate_rows_dropped} duplicate rows and "
               f"{report.conflict_rows_dropped} rows of {report.conflicting_texts} texts with conflicting labels; "
               + ", ".join(f"{k} {v}" for k, v in report.sizes.items()))
