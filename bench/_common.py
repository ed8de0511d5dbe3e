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


def parse_overrides(text: str) -> dict:
    """'key:value,key:value' -> trustfit config overrides; values are JSON where they parse."""
    overrides = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition(":")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def machine() -> dict:
    """What the figures were measured on: CPU model, kind (native bf16 or not), usable flags,
    instruction-set caps in force (an emulated AVX2 CPU), cores."""
    from trustfit.hardware import cpu_info, cpu_kind

    info = cpu_info()
    return {"cpu": info["model"], "kind": cpu_kind(info), "flags": info["flags"], "capped": info["capped"],
            "caps": info["caps"], "cores": os.cpu_count(), "ld_preload": os.environ.get("LD_PRELOAD")}


def emulate_cpu(kind: str | None) -> None:
    """Cap PyTorch's kernels in this process and its children as on a CPU of `kind` ('avx2':
    ATen, oneDNN, MKL and fbgemm limited to AVX2, so bf16 is emulated, fp32 and int8 run 256-bit wide)."""
    if kind == "avx2":
        from trustfit.hardware import EMULATE_AVX2

        os.environ.update(EMULATE_AVX2)


# malloc replacements from Debian (apt-get install libjemalloc2 libtcmalloc-minimal4), loaded by LD_PRELOAD
ALLOCATORS = {"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
              "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"}


def use_allocator(name: str | None) -> None:
    """Run the children of this benchmark with `name`'s malloc (LD_PRELOAD), glibc's when None."""
    if name is None:
        return
    path = ALLOCATORS[name]
    if not os.path.exists(path):
        raise SystemExit(f"--allocator {name}: {path} is missing; apt-get install libjemalloc2 libtcmalloc-minimal4")
    os.environ["LD_PRELOAD"] = path


def add_emulate_option(parser) -> None:
    """--emulate avx2: measure as an AVX2-only CPU would run (see emulate_cpu)."""
    parser.add_argument("--emulate", choices=["avx2"], default=None,
                        help="run as on an AVX2-only CPU (caps ATen, oneDNN, MKL and fbgemm at AVX2; set in "
                        "the children too)")


def add_allocator_option(parser) -> None:
    """--allocator jemalloc|tcmalloc: the measured child processes' malloc (see use_allocator)."""
    parser.add_argument("--allocator", choices=sorted(ALLOCATORS), default=None,
                        help="run the measured processes with this malloc (LD_PRELOAD; default glibc's)")


def write_results(name: str, result: dict, table: list[list[str]]) -> None:
    """Write RESULTS/name.json and name.md (both saying which CPU kind measured them) and print
    the Markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    where = machine()
    if where["ld_preload"]:
        table = [table[0]] + [[f"{row[0]} [{Path(where['ld_preload']).name}]", *row[1:]] for row in table[1:]]
    (RESULTS / f"{name}.json").write_text(json.dumps({**result, "machine": where}, indent=2))
    head, *rows = table
    md = f"Measured on {where['cpu']} ({where['kind']}, {where['cores']} cores)\n\n"
    if where["capped"]:
        caps = ", ".join(f"{k}={v}" for k, v in where["caps"].items())
        md = (f"Measured on {where['cpu']} run as {where['kind']} ({caps}; hidden: {', '.join(where['capped'])}), "
              f"{where['cores']} cores\n\n")
    md += "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    md += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    (RESULTS / f"{name}.md").write_text(md)
    print(md)
