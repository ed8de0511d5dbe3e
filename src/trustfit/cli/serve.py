"""`trustfit serve`: the HTTP API and web page for a trained model, under uvicorn."""

from __future__ import annotations

from typing import Optional

import typer

from trustfit.cli.common import app, fail
from trustfit.errors import TrustfitError


@app.command()
def serve(
    model: str = typer.Option(..., "--model", help="trained model folder (NER or classifier)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (off loopback an API key is required)"),
    port: int = typer.Option(8000, "--port"),
    api_key_file: Optional[str] = typer.Option(None, "--api-key-file", help="file whose first line is the API key"),
    workers: int = typer.Option(1, "--workers", help="processes, each with its own model copy"),
    answers: Optional[str] = typer.Option(None, "--answers", help="router: YAML/JSON intent -> reply file"),
    threshold: float = typer.Option(0.5, "--threshold", help="router: hand off below this confidence"),
    top_k: int = typer.Option(3, "--top-k", help="classify: labels listed per text"),
    max_texts: int = typer.Option(64, "--max-texts", help="texts per /v1/predict request"),
    max_chars: int = typer.Option(5000, "--max-chars", help="characters per text"),
    max_body_bytes: int = typer.Option(1_000_000, "--max-body-bytes"),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="how long a batch waits for more requests"),
    max_batch: int = typer.Option(64, "--max-batch", help="texts per model batch (1 turns micro-batching off)"),
    max_queue: int = typer.Option(512, "--max-queue", help="texts waiting before requests get 503"),
    explain_concurrency: int = typer.Option(1, "--explain-concurrency"),
    explain_max_words: int = typer.Option(200, "--explain-max-words"),
    explain_max_samples: int = typer.Option(2000, "--explain-max-samples"),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="allow browser calls from this origin (repeat)"),
    quantize: str = typer.Option("none", "--quantize", help="none or int8 (dynamic quantisation, CPU)"),
    runtime: str = typer.Option("torch", "--runtime", help="torch, int8, onnx (ONNX Runtime) or onnx-int8"),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Serve predictions and explanations over HTTP (API + web page at /), with micro-batching."""
    import os

    import uvicorn

    from trustfit.serve.settings import ENV_VAR, ServeSettings, read_api_key

    try:
        settings = ServeSettings(
            model=model, host=host, port=port, api_key=read_api_key(api_key_file) if api_key_file else None,
            workers=workers, answers=answers, threshold=threshold, top_k=top_k, max_texts=max_texts,
            max_chars=max_chars, max_body_bytes=max_body_bytes, max_wait_ms=max_wait_ms, max_batch=max_batch,
            max_queue=max_queue, explain_concurrency=explain_concurrency, explain_max_words=explain_max_words,
            explain_max_samples=explain_max_samples, cors_origins=list(cors_origin), quantize=quantize,
            runtime=runtime).validate()
        from trustfit.models.backbone import resolve_model_source

        resolve_model_source(model)
    except TrustfitError as e:
        fail(e)
    typer.echo(f"serving {model} on http://{host}:{port}/ ({workers} worker{'s' * (workers > 1)}, "
               f"{'API key required' if settings.api_key else 'no API key'})", err=True)
    if workers > 1:
        os.environ[ENV_VAR] = settings.to_env()
        uvicorn.run("trustfit.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, timeout_graceful_shutdown=30)
    else:
        from trustfit.serve.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30)
