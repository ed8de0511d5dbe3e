"""Server settings: one dataclass, validated once, passed to uvicorn workers as JSON."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trustfit.errors import ConfigError

ENV_VAR = "TRUSTFIT_SERVE_SETTINGS"
EXPLAIN_METHODS = ("ig", "gxi", "shap", "lime", "random")


@dataclass
class ServeSettings:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # read from --api-key-file, never from the command line
    workers: int = 1
    max_texts: int = 64  # texts per /v1/predict request
    max_chars: int = 5000  # characters per text
    max_body_bytes: int = 1_000_000
    max_wait_ms: float = 5.0  # how long the batcher waits for more requests after the first
    max_batch: int = 64  # texts per model batch (1 = micro-batching off)
    max_batch_tokens: int = 8192  # sub-tokens per model batch
    max_queue: int = 512  # texts waiting; beyond it requests get 503 + Retry-After
    explain_concurrency: int = 1  # explanations running at once
    explain_max_words: int = 200
    explain_max_samples: int = 2000  # shap/lime budget cap (ig steps are capped at 64)
    explain_methods: list[str] = field(default_factory=lambda: list(EXPLAIN_METHODS))
    cors_origins: list[str] = field(default_factory=list)
    answers: str | None = None  # router: intent -> reply file
    threshold: float = 0.5  # router hand-off threshold
    top_k: int = 3
    quantize: str = "none"  # none | int8 (dynamic quantisation of the linear layers)
    runtime: str = "torch"  # a predict.runtime name: torch | int8 | onnx | onnx-int8 (ONNX: exported at start-up)

    def validate(self) -> "ServeSettings":
        problems = []
        if not is_loopback(self.host) and not self.api_key:
            problems.append(f"--host {self.host} is reachable from other machines: give --api-key-file "
                            "(the server refuses to start without a key off loopback)")
        for name in ("workers", "max_texts", "max_chars", "max_body_bytes", "max_batch", "max_batch_tokens",
                     "max_queue", "explain_concurrency", "explain_max_words", "explain_max_samples", "top_k"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            problems.append(f"--max-wait-ms must be 0 or more, got {self.max_wait_ms}")
        if not 0 <= self.threshold <= 1:
            problems.append(f"--threshold must be within [0, 1], got {self.threshold}")
        if self.quantize not in ("none", "int8"):
            problems.append(f"--quantize {self.quantize!r}: use none or int8")
        from trustfit.predict.runtime import RUNTIMES

        if self.runtime not in RUNTIMES:
            problems.append(f"--runtime {self.runtime!r}: use one of {', '.join(RUNTIMES)}")
        if self.runtime != "torch" and self.quantize != "none":
            problems.append(f"--runtime {self.runtime} and --quantize int8 do not combine: choose one "
                            "(--quantize int8 is --runtime int8)")
        bad = [m for m in self.explain_methods if m not in EXPLAIN_METHODS]
        if bad:
            problems.append(f"unknown explanation methods {', '.join(bad)}: use {', '.join(EXPLAIN_METHODS)}")
        if problems:
            raise ConfigError("cannot serve:\n" + "\n".join(f"  - {p}" for p in problems))
        return self

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServeSettings":
        raw = os.environ.get(ENV_VAR)
        if not raw:
            raise ConfigError(f"{ENV_VAR} is not set; start the server with `trustfit serve`")
        return cls(**json.loads(raw))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_api_key(path: str | Path) -> str:
    """The key is the file's first line; an empty or missing file is an error."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path}: no such API key file")
    text = p.read_text(encoding="utf-8").strip()
    key = text.splitlines()[0].strip() if text else ""
    if len(key) < 16:
        raise ConfigError(f"{path}: the API key must be at least 16 characters on the first line "
                          "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' > key.txt)")
    return key
