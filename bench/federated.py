"""Federated benchmark: the global model of a simulated federation against central training with
the same total epochs, on CoNLL-2003 with the packaged model, every model trained in this run.

Runs (train = the first --sentences sentences of CoNLL-2003 train, 0 = all 14,041; dev = valid):
- central: `trustfit train`, --rounds epochs, the defaults;
- federated: `trustfit federate`, --clients clients, --partition, --rounds rounds of 1 local epoch,
  FedAvg, every parameter shared, no client dev split (every example trains, as centrally), at the
  central default learning rate 1e-4;
- federated, --fed-lr (5e-4 and 1e-3): the same with larger client learning rates (averaging
  10 clients' short local runs moves the model about as far as one client's: the sequential
  steps a round adds are a tenth of a central epoch's);
- federated top-2: only the top 2 layers and the head trained and sent (the communication lever),
  at the first --fed-lr;
- federated DP: client DP-SGD at epsilon 8 per client over all rounds (delta 1e-5, LoRA, Poisson
  batch 64 of each client's ~N/10 examples), against central DP-SGD at epsilon 8 (batch 256).
Reported: dev entity F1 after each round / epoch, wall seconds of the whole command, MB sent and
received per round, shared parameters.

Goal (issue #10): the federated global model within 2 F1 points of central training.

    python bench/federated.py [--sentences 5000] [--clients 10] [--rounds 5] [--partition dirichlet:0.5]
                              [--fed-lr 5e-4,1e-3] [--quick] [--reuse]
                              [--only central,federated,federated-lr,top2,fed-dp,central-dp]"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, slice_conll, write_results  # noqa: E402

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TRUSTFIT = [sys.executable, "-m", "trustfit"]
OUT = RESULTS / "federated"


def run(cmd: list[str], out: Path, done_file: str, reuse: bool) -> float | None:
    """Run a trustfit command unless --reuse finds its result; its wall seconds (recorded beside it)."""
    record = out / "bench_wall_s.json"
    if reuse and (out / done_file).exists():
        return json.loads(record.read_text())["wall_s"] if record.exists() else None
    t0 = time.perf_counter()
    subprocess.run(TRUSTFIT + cmd + ["--out", str(out), "--overwrite", "--quiet"], check=True, env=ENV)
    wall = round(time.perf_counter() - t0, 1)
    record.write_text(json.dumps({"wall_s": wall}))
    return wall


def central(name: str, train: Path, dev: Path, epochs: int, extra: list[str], reuse: bool) -> dict:
    out = OUT / name
    wall = run(["train", "--train", str(train), "--dev", str(dev), "--epochs", str(epochs), *extra], out,
               "train_summary.json", reuse)
    s = json.loads((out / "train_summary.json").read_text())
    res = {"f1_by_epoch": [round(100 * h["f1"], 2) for h in s["history"]], "wall_s": wall,
           "train_s": round(s["train_seconds"], 1), "mb_per_round": None, "shared_parameters": None}
    if "privacy" in s:
        res["epsilon"] = round(s["privacy"]["epsilon"], 3)
    return res


def federated(name: str, train: Path, dev: Path, args, extra: list[str]) -> dict:
    out = OUT / name
    wall = run(["federate", "--train", str(train), "--dev", str(dev), "--clients", str(args.clients),
                "--rounds", str(args.rounds), "--partition", args.partition, "--client-dev-share", "0", *extra],
               out, "federated_summary.json", args.reuse)
    s = json.loads((out / "federated_summary.json").read_text())
    rounds = json.loads((out / "rounds.json").read_text())["rounds"]
    res = {"f1_by_epoch": [round(100 * r["central_eval"]["f1"], 2) for r in rounds], "wall_s": wall,
           "train_s": round(s["seconds"], 1), "mb_per_round": round(sum(s["bytes_per_round"]) / len(rounds) / 1e6, 1),
           "shared_parameters": s["shared_parameters"], "failures": s["failures"],
           "client_train_s_per_round": round(sum(max(c["train-seconds"] for c in r["train_clients"])
                                                 for r in rounds) / len(rounds), 1)}
    if s.get("client_privacy"):
        eps = [p["epsilon"] for p in s["client_privacy"].values()]
        res["epsilon"] = f"{min(eps):.2f}-{max(eps):.2f} (per client)"
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=5000, help="CoNLL-2003 train sentences (0 = all)")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--partition", default="dirichlet:0.5")
    ap.add_argument("--fed-lr", default="5e-4,1e-3", help="client learning rates of further federated runs (comma-"
                    "separated; top-2 uses the first)")
    ap.add_argument("--quick", action="store_true", help="600 sentences, 3 clients, 2 rounds, 300 dev sentences")
    ap.add_argument("--reuse", action="store_true", help="reuse finished runs in bench/results/federated")
    ap.add_argument("--only", default="central,federated,federated-lr,top2,fed-dp,central-dp")
    args = ap.parse_args()
    if args.quick:
        args.sentences, args.clients, args.rounds = 600, 3, 2
    train = slice_conll(DATA / "conll2003" / "train.txt", OUT / "train_slice.txt", args.sentences or None)
    dev = slice_conll(DATA / "conll2003" / "valid.txt", OUT / "dev_slice.txt", 300 if args.quick else None)
    only = set(args.only.split(","))
    runs: dict[str, dict] = {}
    lrs = args.fed_lr.split(",")
    plan = [("central", lambda: central("central", train, dev, args.rounds, [], args.reuse)),
            ("federated", lambda: federated("federated", train, dev, args, ["--lr", "1e-4"]))]
    plan += [(f"federated-lr{lr}", lambda lr=lr: federated(f"federated-lr{lr}", train, dev, args, ["--lr", lr]))
             for lr in lrs]
    plan += [("top2", lambda: federated("top2", train, dev, args, ["--federate-params", "top-2", "--lr", lrs[0]])),
            ("fed-dp", lambda: federated("fed-dp", train, dev, args, ["--dp-epsilon", "8", "--dp-batch-size", "64"])),
            ("central-dp", lambda: central("central-dp", train, dev, args.rounds, ["--dp-epsilon", "8"], args.reuse))]
    for name, fn in plan:
        if name in only or (name.startswith("federated-lr") and "federated-lr" in only):
            runs[name] = fn()
            print(name, json.dumps(runs[name]), flush=True)
    labels = {"central": "central training (`trustfit train`)",
              "federated": f"federated, FedAvg, all parameters, lr 1e-4 ({args.clients} clients, {args.partition})",
              **{f"federated-lr{lr}": f"the same, client lr {lr}" for lr in lrs},
              "top2": f"federated, top-2 layers + head shared, lr {lrs[0]}", "fed-dp": "federated + client DP-SGD (LoRA)",
              "central-dp": "central DP-SGD (LoRA)"}
    table = [["run", "dev F1 by round / epoch", "final F1", "gap to central", "epsilon", "wall s", "MB per round",
              "shared parameters"]]
    base = runs.get("central", {}).get("f1_by_epoch", [None])[-1]
    for name, r in runs.items():
        f1 = r["f1_by_epoch"][-1]
        ref = runs.get("central-dp", {}).get("f1_by_epoch", [None])[-1] if name == "fed-dp" else base
        gap = f"{f1 - ref:+.2f}" if ref is not None and name not in ("central", "central-dp") else "-"
        table.append([labels[name], " / ".join(f"{x:.2f}" for x in r["f1_by_epoch"]), f"{f1:.2f}", gap,
                      str(r.get("epsilon", "∞")), str(r["wall_s"]), str(r["mb_per_round"] or "-"),
                      f"{r['shared_parameters']:,}" if r["shared_parameters"] else "-"])
    result = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "sentences": args.sentences,
              "clients": args.clients, "rounds": args.rounds, "partition": args.partition, "runs": runs}
    write_results("federated", result, table)


if __name__ == "__main__":
    main()
