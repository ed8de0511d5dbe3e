"""What every audit shares (the convention in ../shared/docs/architecture.md): `trustfit audit
KIND --model DIR ...` writes `result.json` (kind, schema_version, exact settings, data file and
its hash, model fingerprint, timings, metrics with confidence intervals, a short `headline`),
`report.md` and PNG plots into OUT, by default DIR/audits/KIND/. The model card reads only these."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

MODEL_FILES = ("config.json", "model.safetensors", "trustfit.json")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 over the files that define a trained model (config, weights, trustfit.json)."""
    h = hashlib.sha256()
    for name in MODEL_FILES:
        p = Path(model_dir) / name
        if p.exists():
            h.update(name.encode())
            h.update(file_sha256(p).encode())
    return h.hexdigest()


def default_audit_dir(model_dir: str | Path, kind: str) -> Path:
    return Path(model_dir) / "audits" / kind


def bootstrap_ci(values: Sequence[float], resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, Any]:
    """Mean with a percentile bootstrap interval (seeded); no interval below 2 values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    out: dict[str, Any] = {"mean": float(v.mean()) if len(v) else None, "n": int(len(v))}
    if len(v) < 2:
        out["ci"] = None
        return out
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    out["ci"] = [float(lo), float(hi)]
    out["level"] = level
    return out


def read_labelled_conll(path: str | Path, schema, meta: dict[str, Any], audit: str):
    """The CoNLL file an audit scores, checked against the model's labels (tags it never saw
    become O); an unlabelled file is refused with the audit's name."""
    from trustfit.data.conll import read_conll
    from trustfit.errors import DataError

    corpus = read_conll(path, scheme=meta.get("scheme_in", "iob2"))
    if not corpus.is_labelled:
        raise DataError(f"{path}: the {audit} audit needs gold tags (a labelled CoNLL file)")
    schema.check_corpus(corpus, unknown_to_o=True)
    return corpus


def audit_header(kind: str, schema_version: int, model_dir: str | Path, data: str | Path | None,
                 settings: dict[str, Any]) -> dict[str, Any]:
    """The fields every result.json starts with."""
    head: dict[str, Any] = {"kind": kind, "schema_version": schema_version, "created": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "settings": settings,
        "model": {"path": str(model_dir), "fingerprint": model_fingerprint(model_dir)},
        "environment": {"python": platform.python_version(), "machine": platform.machine()}}
    if data is not None:
        head["data"] = {"path": str(data), "sha256": file_sha256(data)}
    return head


def write_audit(out_dir: str | Path, result: dict[str, Any], report_md: str) -> Path:
    """Write result.json and report.md; returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False, default=float))
    (out / "report.md").write_text(report_md, encoding="utf-8")
    return out
