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


def _fail(e: TrustfitError) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


@app.command()
def train(
    train: Optional[str] = typer.Option(None, "--train", help="training file (CoNLL columns)"),
    dev: Optional[str] = typer.Option(None, "--dev", help="dev file for evaluation, early stopping and best model"),
    out: Optional[str] = typer.Option(None, "--out", help="output folder (HF model + reports + checkpoints)"),
    task: Task = typer.Option(Task.ner, "--task"),
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
    scheme: Optional[str] = typer.Option(None, "--scheme", help="iob1, iob2, bioes or bilou"),
    token_column: Optional[int] = typer.Option(None, "--token-column"),
    tag_column: Optional[int] = typer.Option(None, "--tag-column"),
    encoding: Optional[str] = typer.Option(None, "--encoding"),
    delimiter: Optional[str] = typer.Option(None, "--delimiter", help="column separator: tab (default: whitespace)"),
    unknown_tags: Optional[str] = typer.Option(None, "--unknown-tags", help="error (default) or o"),
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
    from trustfit.train.run import train_ner

    try:
        cfg = build_config(config, dict(
            task=task.value, train=train, dev=dev, out=out, model=model, epochs=epochs, max_steps=max_steps,
            batch_size=batch_size, lr=lr, seed=seed, precision=precision, context_tokens=context_tokens,
            max_length=max_length, scheme=scheme, token_column=token_column, tag_column=tag_column,
            encoding=encoding, delimiter=delimiter, unknown_tags=unknown_tags, eval_every=eval_every,
            checkpoint_every=checkpoint_every, patience=patience))
        summary = train_ner(cfg, resume=resume, overwrite=overwrite, quiet=quiet)
    except TrustfitError as e:
        _fail(e)
    if json_out:
        json_out.write_text(json.dumps(summary, indent=2))
    if not quiet and "dev" in summary:
        from trustfit.evaluate.ner import NerMetrics, render_metrics

        render_metrics(NerMetrics(**summary["dev"]))
    typer.echo(f"model saved to {summary['out']} ({summary['steps']} steps, "
               f"{summary['words_per_second']:.0f} words/s)", err=True)


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", help="trained model folder"),
    data: str = typer.Option(..., "--data", help="labelled CoNLL file"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write metrics JSON here"),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="write `token gold pred` lines here"),
    scheme: str = typer.Option("iob2", "--scheme"),
    token_column: int = typer.Option(0, "--token-column"),
    tag_column: int = typer.Option(-1, "--tag-column"),
    encoding: str = typer.Option("utf-8", "--encoding"),
    delimiter: Optional[str] = typer.Option(None, "--delimiter"),
    unknown_tags: str = typer.Option("error", "--unknown-tags", help="error (default) or o"),
    batch_size: int = typer.Option(64, "--batch-size"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Entity-level (strict IOB2, conlleval-equivalent) and token-level reports on a labelled file."""
    from trustfit.data.conll import read_conll
    from trustfit.evaluate.ner import ner_metrics, render_metrics, write_conll_predictions
    from trustfit.predict.ner import NerPredictor

    try:
        predictor = NerPredictor.from_dir(model, batch_size=batch_size)
        corpus = read_conll(data, token_column=token_column, tag_column=tag_column, scheme=scheme,
                            encoding=encoding, delimiter="\t" if delimiter == "tab" else delimiter)
        predictor.schema.check_corpus(corpus, unknown_to_o=unknown_tags == "o")
    except TrustfitError as e:
        _fail(e)
    pred = predictor.predict(corpus)
    metrics = ner_metrics([s.tags for s in corpus], pred.tags, predictor.schema.labels)
    if predictions:
        write_conll_predictions(predictions, corpus.sentences, pred.tags)
    if json_out:
        json_out.write_text(json.dumps(metrics.to_json(), indent=2))
    if quiet:
        typer.echo(f"entity F1 {100 * metrics.f1:.2f}")
    else:
        render_metrics(metrics)


@app.command()
def predict(
    model: str = typer.Option(..., "--model", help="trained model folder"),
    input: str = typer.Argument("-", help="input file, or - for stdin"),
    format: str = typer.Option("text", "--format", help="text (one sentence a line) or conll"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSONL output (default: stdout)"),
    batch_size: int = typer.Option(64, "--batch-size"),
    token_column: int = typer.Option(0, "--token-column"),
    encoding: str = typer.Option("utf-8", "--encoding"),
) -> None:
    """Tag text or a CoNLL file; one JSON line per sentence with its entities."""
    from trustfit.data.conll import read_conll
    from trustfit.predict.ner import NerPredictor, corpus_from_lines, entities_json

    try:
        predictor = NerPredictor.from_dir(model, batch_size=batch_size)
        if format == "conll":
            if input == "-":
                raise TrustfitError("--format conll reads a file; give its path instead of -")
            corpus = read_conll(input, token_column=token_column, tag_column=None, encoding=encoding)
        elif format == "text":
            if input == "-":
                lines = sys.stdin.read().splitlines()
            else:
                p = Path(input)
                if not p.exists():
                    raise TrustfitError(f"{input}: no such file")
                try:
                    lines = p.read_text(encoding=encoding).splitlines()
                except UnicodeDecodeError as e:
                    raise TrustfitError(f"{input}: not {encoding} text ({e.reason} at byte {e.start}); "
                                        "pass --encoding") from None
            corpus = corpus_from_lines(lines, source=input)
        else:
            raise TrustfitError(f"unknown --format {format!r}: use text or conll")
    except TrustfitError as e:
        _fail(e)
    pred = predictor.predict(corpus)
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for s, tags, scores in zip(corpus.sentences, pred.tags, pred.scores):
            rec = {"line": s.line, "tokens": s.tokens, "tags": tags, "entities": entities_json(s, tags, scores)}
            if s.text is not None:
                rec = {"text": s.text, **rec}
            sink.write(json.dumps(rec, ensure_ascii=False) + "\n")
    finally:
        if output:
            sink.close()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
