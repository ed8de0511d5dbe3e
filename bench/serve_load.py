"""Serving benchmark: `trustfit serve` with the CoNLL-2003 model on loopback, single-sentence
requests (CoNLL-2003 valid sentences as plain text) from 32 concurrent connections for a fixed
time, with micro-batching on (default) and off (--max-batch 1) in the same run, one server after
the other; then an open-loop 50 requests/s run with batching on (p99 latency); then the
int8-quantised model and ONNX Runtime against float32 and bf16 on the whole valid file (entity F1
and words/s).

The closed-loop load comes from `wrk` (Debian package, C): on 2 cores a Python client takes CPU
from the server it measures (httpx's async client halved the measured throughput). Without wrk
the httpx client is used and the table says so.

    python bench/serve_load.py [--model DIR] [--seconds 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, write_results  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: str, *extra: str) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "trustfit", "serve", "--model", model, "--port", str(port),
                             "--log-level", "warning", "--max-queue", "4096", *extra], env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


async def closed_loop(url: str, texts: list[str], clients: int, max_requests: int, max_seconds: float) -> dict:
    """`clients` concurrent callers, each sending the next sentence as soon as it has an answer."""
    import httpx

    latencies: list[float] = []
    errors = 0
    next_i = 0
    t_end = time.perf_counter() + max_seconds

    async def caller(client):
        nonlocal next_i, errors
        while next_i < max_requests and time.perf_counter() < t_end:
            i = next_i
            next_i += 1
            t0 = time.perf_counter()
            r = await client.post(url + "/v1/predict", json={"texts": [texts[i % len(texts)]]})
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(caller(client) for _ in range(clients)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "seconds": round(wall, 2),
            "requests_per_second": round(len(latencies) / wall, 1), "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1)}


async def open_loop(url: str, texts: list[str], rate: float, seconds: float) -> dict:
    """Requests started at a fixed rate whatever the answers do (what users do to a service)."""
    import httpx

    latencies: list[float] = []
    errors = 0

    async def one(client, text):
        nonlocal errors
        t0 = time.perf_counter()
        r = await client.post(url + "/v1/predict", json={"texts": [text]})
        if r.status_code == 200:
            latencies.append(time.perf_counter() - t0)
        else:
            errors += 1

    n = int(rate * seconds)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=256)) as client:
        tasks, start = [], time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(client, texts[i % len(texts)])))
        await asyncio.gather(*tasks)
    lat = np.array(latencies) * 1000
    return {"rate": rate, "requests": len(latencies), "errors": errors,
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1)}


def wrk_lua(texts: list[str], path: Path) -> Path:
    """A wrk script that posts the sentences in turn, one per request."""
    import json

    bodies = ",\n".join("[==[" + json.dumps({"texts": [t]}) + "]==]" for t in texts[:1000])
    path.write_text("bodies = {\n" + bodies + "\n}\ncounter = 0\nrequest = function()\n  counter = counter + 1\n"
                    "  return wrk.format(\"POST\", \"/v1/predict\", {[\"Content-Type\"] = \"application/json\"}, "
                    "bodies[(counter % #bodies) + 1])\nend\n")
    return path


def wrk_run(url: str, script: Path, clients: int, seconds: float) -> dict:
    import re

    out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{int(seconds)}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return round(v / 1000 if unit == "us" else v * 1000 if unit == "s" else v, 1)

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"requests_per_second": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"),
            "errors": int(non2xx.group(1)) if non2xx else 0, "client": "wrk", "seconds": seconds}


def batch_stats(url: str) -> dict:
    import httpx

    text = httpx.get(url + "/metrics").text
    vals = {l.split()[0]: float(l.split()[-1]) for l in text.splitlines() if l.startswith("trustfit_batch_texts_")}
    n = vals.get("trustfit_batch_texts_count", 0)
    return {"batches": int(n), "mean_batch": round(vals.get("trustfit_batch_texts_sum", 0) / n, 2) if n else None}


def int8_vs_fp32(model: str) -> dict:
    """Entity F1 and prediction words/s on CoNLL-2003 valid: float32, bf16 autocast, dynamic int8
and ONNX Runtime (float32), each through the same predictor (bench/ner_predict.runtime_table)."""
    from ner_predict import runtime_table

    from trustfit.data.conll import read_conll

    table = runtime_table(model, read_conll(DATA / "conll2003/valid.txt"), ("fp32", "bf16", "int8", "onnx"))
    return {k.replace("torch ", ""): {"f1": round(v["f1"], 2), "words_per_second": round(v["words_per_second"])}
            for k, v in table.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(Path("runs/conll")))
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.seconds = 8
    if not (Path(args.model) / "trustfit.json").exists():
        raise SystemExit(f"{args.model}: train a model first (make demo writes runs/conll)")
    from trustfit.data.conll import read_conll

    texts = [" ".join(s.tokens) for s in read_conll(DATA / "conll2003/valid.txt").sentences if len(s.tokens) > 1]
    import shutil

    result: dict = {"clients": args.clients}
    use_wrk = shutil.which("wrk") is not None
    script = wrk_lua(texts, RESULTS / "serve_post.lua") if use_wrk else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    for mode, extra in (("micro-batching on", ()), ("micro-batching off", ("--max-batch", "1"))):
        proc, url = start(args.model, *extra)
        try:
            asyncio.run(closed_loop(url, texts, args.clients, 64, 30))  # warm-up
            before = batch_stats(url)
            if use_wrk:
                r = wrk_run(url, script, args.clients, args.seconds)
            else:
                r = {**asyncio.run(closed_loop(url, texts, args.clients, 10**9, args.seconds)), "client": "httpx"}
            after = batch_stats(url)
            done = after["batches"] - before["batches"]
            texts_done = (after["mean_batch"] or 0) * after["batches"] - (before["mean_batch"] or 0) * before["batches"]
            r["mean_batch"] = round(texts_done / max(1, done), 2)
            if mode == "micro-batching on":
                r["open_loop_50rps"] = asyncio.run(open_loop(url, texts, 50, 10 if args.quick else 20))
            result[mode] = r
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    result["speedup"] = round(result["micro-batching on"]["requests_per_second"]
                              / result["micro-batching off"]["requests_per_second"], 2)
    result["precision"] = int8_vs_fp32(args.model)
    from trustfit.hardware import cpu_kind

    result["cpu_kind"] = cpu_kind()
    on, off = result["micro-batching on"], result["micro-batching off"]
    table = [["setting", "requests/s", "p50 ms", "p99 ms", "mean texts per batch"],
             [f"micro-batching on, {args.clients} connections ({on['client']})", str(on["requests_per_second"]), str(on["p50_ms"]), str(on["p99_ms"]),
              str(on["mean_batch"])],
             [f"micro-batching off, {args.clients} connections ({off['client']})", str(off["requests_per_second"]), str(off["p50_ms"]), str(off["p99_ms"]),
              str(off["mean_batch"])],
             ["ratio on / off", f"{result['speedup']}x", "", "", ""],
             ["micro-batching on, open loop 50 requests/s (httpx)", "50", str(on["open_loop_50rps"]["p50_ms"]),
              str(on["open_loop_50rps"]["p99_ms"]), ""]]
    for name, v in result["precision"].items():
        table.append([f"model {name}: CoNLL-2003 valid entity F1 {v['f1']}", f"{v['words_per_second']} words/s",
                      "", "", ""])
    print(f"CPU kind: {result['cpu_kind']}")
    write_results("serve_load" + ("_quick" if args.quick else ""), result, table)


if __name__ == "__main__":
    main()
