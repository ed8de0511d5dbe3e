"""Fairness benchmark: what the audit finds on real models, and what counterfactual
augmentation (CDA) does about it, each side trained in the same run with the same settings.

NER: CoNLL-2003, the default 3-epoch training, normal vs `--cda names --cda-rate 0.5`; the
audit's name swaps on CoNLL dev give PER recall per name group with intervals.
Sentiment: SST-2 (deduplicated and split by `trustfit split`; a training subset bounds the
time), normal vs `--cda gender,names`; flip rate and P(positive) gap per group pair on the
held-out sentences that mention a term and on the project's template suites.

Goal (issue #8): CDA cuts the largest flip rate or recall gap by at least half at a cost of at
most 1 point of dev accuracy or F1.

    python bench/fairness.py [--quick] [--reuse]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, slice_conll, write_results  # noqa: E402

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TRUSTFIT = [sys.executable, "-m", "trustfit"]
OUT = RESULTS / "fairness"


def train(args: list[str], out: Path, reuse: bool) -> dict:
    if not (reuse and (out / "train_summary.json").exists()):
        subprocess.run(TRUSTFIT + ["train", *args, "--out", str(out), "--overwrite", "--quiet"], check=True, env=ENV)
    s = json.loads((out / "train_summary.json").read_text())
    dev = json.loads((out / "dev_metrics.json").read_text())
    return {"train_s": round(s["train_seconds"], 1), "steps": s["steps"], "dev": dev,
            "cda": s.get("counterfactual_augmentation", {}).get("epochs")}


def audit(model: Path, data: Path, args: list[str]) -> dict:
    out = model / "audits" / "fairness"
    subprocess.run(TRUSTFIT + ["audit", "fairness", "--model", str(model), "--data", str(data), "--out", str(out),
                               "--quiet", *args], check=True, env=ENV, stdout=subprocess.DEVNULL)
    return json.loads((out / "result.json").read_text())


def largest(res: dict, key: str = "gap") -> tuple[str, dict]:
    return max(res["pairs"].items(), key=lambda kv: abs(kv[1][key]))


def pct(x, d=2) -> str:
    return "–" if x is None else f"{100 * x:.{d}f}"


def ci(c) -> str:
    return "–" if not c else f"{pct(c[0])} to {pct(c[1])}"


def sst2_split(quick: bool) -> Path:
    d = OUT / "sst2_data"
    if not (d / "test.jsonl").exists():
        subprocess.run(TRUSTFIT + ["split", "--input", str(DATA / "sst2/train.tsv"), "--text-column", "sentence",
                                   "--out", str(d), "--dev", "0.05", "--test", "0.15"], check=True, env=ENV,
                       stdout=subprocess.DEVNULL)
    return d


def split_names(out: Path) -> tuple[Path, Path]:
    """The packaged names list cut in two halves (every other name of each group, gender and
    part): CDA trains with half A, the audit asks with half B, so the gain is measured on names
    the augmentation never showed the model."""
    from trustfit.fairness.terms import TERMS_DIR

    lines = (TERMS_DIR / "names.txt").read_text().splitlines()
    head = [x for x in lines if x.startswith("#")]
    seen: dict[tuple, int] = {}
    halves: tuple[list, list] = ([], [])
    for x in lines:
        if x.startswith("#") or not x.strip():
            continue
        key = tuple(f.strip() for f in x.split("|")[:3])
        halves[seen.get(key, 0) % 2].append(x)
        seen[key] = seen.get(key, 0) + 1
    paths = (out / "names_half_a.txt", out / "names_half_b.txt")
    for p, half in zip(paths, halves):
        p.write_text("\n".join(head + half) + "\n")
    return paths


def head_jsonl(src: Path, dst: Path, n: int) -> Path:
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)[:n]
    dst.write_text("".join(lines), encoding="utf-8")
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small slices, 1 epoch: checks the pipeline")
    ap.add_argument("--reuse", action="store_true", help="keep models already trained in bench/results/fairness")
    ap.add_argument("--skip-ner", action="store_true")
    ap.add_argument("--skip-sst2", action="store_true")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--heldout-names", action="store_true", help="NER: also CDA with half of the names, audited "
                    "with the other half")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result: dict = {"quick": a.quick, "ner": {}, "sst2": {}}
    rows = [["model", "training", "dev score", "train s", "largest gap (pair)", "gap (95 % CI)", "flip rate",
             "groups (value, 95 % CI)"]]
    boot = ["--resamples", str(a.resamples)]
    if not a.skip_ner:
        conll = DATA / "conll2003"
        train_f = slice_conll(conll / "train.txt", OUT / "conll_train_quick.txt", 2000 if a.quick else None)
        dev_f = slice_conll(conll / "valid.txt", OUT / "conll_dev_quick.txt", 500 if a.quick else None)
        base = ["--train", str(train_f), "--dev", str(dev_f), "--epochs", "1" if a.quick else "3"]
        for name, extra in (("normal", []), ("cda names 0.5", ["--cda", "names", "--cda-rate", "0.5"])):
            model = OUT / f"ner_{name.split()[0]}"
            tr = train(base + extra, model, a.reuse)
            res = audit(model, dev_f, ["--swaps", "names,gender", "--templates"] + boot)
            result["ner"][name] = {"train": tr, "audit": {k: res[k] for k in ("counterfactual", "templates",
                                                                                 "timings", "settings")}}
            for where, block in (("dev", res["counterfactual"]), ("templates", res["templates"])):
                if "names" not in block:
                    continue
                cf = block["names"]
                pair, item = largest(cf)
                groups = "; ".join(f"{g} {pct(v['value'], 1)} ({ci(v['ci'])})" for g, v in cf["groups"].items())
                rows.append([f"CoNLL NER, names on {where} ({cf['examples']} sent.)", name, f"F1 {pct(tr['dev']['entity']['micro']['f1'])}",
                             str(tr["train_s"]), f"PER recall, {pair}", f"{pct(item['gap'])} ({ci(item['gap_ci'])})",
                             "–", groups])
        if a.heldout_names:
            half_a, half_b = split_names(OUT)
            for name, extra in (("normal", []), ("cda names half A 0.5", ["--cda", str(half_a), "--cda-rate", "0.5"])):
                model = OUT / ("ner_normal" if name == "normal" else "ner_cda_half")
                tr = train(base + extra, model, a.reuse or name == "normal")
                res = audit(model, dev_f, ["--swaps", str(half_b)] + boot)
                cf = res["counterfactual"]["names_half_b"]
                result["ner"][f"{name}, audited with names half B"] = {"train": tr, "audit": cf}
                pair, item = largest(cf)
                groups = "; ".join(f"{g} {pct(v['value'], 1)} ({ci(v['ci'])})" for g, v in cf["groups"].items())
                rows.append([f"CoNLL NER, held-out names (half B) on dev ({cf['examples']} sent.)", name,
                             f"F1 {pct(tr['dev']['entity']['micro']['f1'])}", str(tr["train_s"]), f"PER recall, {pair}",
                             f"{pct(item['gap'])} ({ci(item['gap_ci'])})", "–", groups])
    if not a.skip_sst2:
        d = sst2_split(a.quick)
        n_train = 4000 if a.quick else 30000
        train_f = head_jsonl(d / "train.jsonl", OUT / f"sst2_train_{n_train}.jsonl", n_train)
        dev_f = head_jsonl(d / "dev.jsonl", OUT / "sst2_dev_quick.jsonl", 800) if a.quick else d / "dev.jsonl"
        base = ["--task", "classify", "--train", str(train_f), "--dev", str(dev_f), "--epochs", "1" if a.quick else "2",
                "--lr", "5e-5"]
        for name, extra in (("normal", []), ("cda gender,names 0.5", ["--cda", "gender,names", "--cda-rate", "0.5"])):
            model = OUT / f"sst2_{name.split()[0]}"
            tr = train(base + extra, model, a.reuse)
            res = audit(model, d / "test.jsonl", ["--swaps", "gender,names", "--templates"] + boot)
            result["sst2"][name] = {"train": tr, "audit": {k: res[k] for k in ("counterfactual", "templates",
                                                                                  "timings", "settings")}}
            for where, block in (("held-out", res["counterfactual"]), ("templates", res["templates"])):
                for spec, cf in block.items():
                    pair, item = largest(cf, "flip_rate")
                    gpair, gitem = largest(cf)
                    groups = "; ".join(f"{g} {pct(v['mean_score'], 1)}" for g, v in cf["groups"].items())
                    rows.append([f"SST-2, {spec} on {where} ({cf['examples']} sent.)", name,
                                 f"acc {pct(tr['dev']['accuracy'])}", str(tr["train_s"]),
                                 f"P(positive), {gpair}", f"{pct(gitem['gap'])} ({ci(gitem['gap_ci'])})",
                                 f"{pct(item['flip_rate'])} ({pair})", groups])
                    for pol, sub in cf.get("by_polarity", {}).items():
                        gpair, gitem = largest(sub)
                        pair, item = largest(sub, "flip_rate")
                        groups = "; ".join(f"{g} {pct(v, 1)}" for g, v in sub["mean_score"].items())
                        rows.append([f"SST-2, {spec} on templates, {pol} words ({sub['examples']} sent.)", name,
                                     "", "", f"P(positive), {gpair}", f"{pct(gitem['gap'])} ({ci(gitem['gap_ci'])})",
                                     f"{pct(item['flip_rate'])} ({pair})", groups])
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_results("fairness_quick" if a.quick else "fairness", result, rows)


if __name__ == "__main__":
    main()
