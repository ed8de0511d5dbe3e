"""Shared helpers for benchmarks: data slicing, peak RSS, result writing (JSON + Markdown)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def slice_conll(src: Path, dst: Path, n_sentences: int | None) -> Path:
    """First n sentences of a CoNLL file (document markers kept), or the file itself."""
    if not n_sentences:
        return src
    blocks = src.read_text(encoding="utf-8").split("\n\n")
    out, n = [], 0
    for b in blocks:
        out.append(b)
        if b.strip() and not b.strip().startswith("-DOCSTART-"):
            n += 1
        if n >= n_sentences:
            break
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n\n".join(out) + "\n", encoding="utf-8")
    return dst


def run_child(script: Path, args: list[str]) -> dict:
    """Run one side of a benchmark in a fresh process (own peak RSS, no shared caches); the
    child prints one JSON object on its last stdout line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark child failed: {args}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
    """What the figures were measured on: CPU model, kind (native bf16 or not), flags, cores."""
    from trustfit.hardware import cpu_info, cpu_kind

    info = cpu_info()
    return {"cpu": info["model"], "kind": cpu_kind(info), "flags": info["flags"], "cores": os.cpu_count()}


def write_results(name: str, result: dict, table: list[list[str]]) -> None:
    """Write RESULTS/name.json and name.md (both saying which CPU kind measured them) and print
    the Markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    where = machine()
    (RESULTS / f"{name}.json").write_text(json.dumps({**result, "machine": where}, indent=2))
    head, *rows = table
    md = f"Measured on {where['cpu']} ({where['kind']}, {where['cores']} cores)\n\n"
    md += "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    md += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    (RESULTS / f"{name}.md").write_text(md)
    print(md)
