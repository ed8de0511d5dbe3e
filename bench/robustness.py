"""Robustness benchmark: does adversarial training buy robustness, at what clean cost and time?

In one run, with the packaged model: CoNLL-2003 NER trained normally, with FGM, with K-step PGD,
with text-space augmentation (perturbed copies of typo / entity-swap) and with augmentation plus
FGM, the same epochs and data for each; then each model's dev entity F1 clean and under the
typo, case, punct, entity-swap and entity-novel families, and seconds per epoch with the cost
ratio to normal training. Financial PhraseBank: accuracy clean and under typo and word-sub for
normal and FGM training. Cross-check (`--textattack`, needs the venv made by
`bench/robustness.py --setup-textattack`): TextAttack's DeepWordBug recipe, and TextAttack's own
greedy word-importance search driving trustfit's embedding-neighbour candidates, against the
same FPB classifier and examples as word-sub.

    python bench/robustness.py [--quick] [--train-sentences N] [--epochs 1] [--textattack]"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, RESULTS, ROOT, slice_conll, write_results  # noqa: E402

TRUSTFIT = [sys.executable, "-m", "trustfit"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TA_VENV = RESULTS / "textattack-venv"
NER_CONFIGS = {
    "normal": [],
    "fgm": ["--adversarial", "fgm"],
    "pgd (K=3)": ["--adversarial", "pgd", "--adv-steps", "3"],
    "augment typo,entity-swap": ["--augment", "typo,entity-swap", "--augment-rate", "0.3"],
    # augmentation adds 30 % more examples, so more optimizer steps: a normal run with as many
    # steps separates "more training" from "perturbed training" (its steps are set at run time)
    "normal, as many steps as augment": ["--max-steps", "{augment_steps}"],
    "augment + fgm": ["--augment", "typo,entity-swap", "--augment-rate", "0.3", "--adversarial", "fgm"],
}
NER_FAMILIES = ["typo", "case", "punct", "entity-swap", "entity-novel"]
FPB_CONFIGS = {"normal": [], "fgm": ["--adversarial", "fgm"]}
FPB_FAMILIES = ["typo", "word-sub"]


def train(args: list[str], out: Path) -> dict:
    t0 = time.perf_counter()
    subprocess.run(TRUSTFIT + ["train", *args, "--out", str(out), "--overwrite", "--quiet"], check=True, env=ENV)
    wall = time.perf_counter() - t0
    s = json.loads((out / "train_summary.json").read_text())
    return {"wall_s": round(wall, 1), "train_s": round(s["train_seconds"], 1), "steps": s["steps"],
            "s_per_epoch": round(s["train_seconds"] / max(1, s["epochs_done"]), 1),
            "adversarial": s.get("adversarial"), "augmentation": s.get("augmentation")}


def audit(model: Path, data: Path, families: list[str], limit: int | None, inventory: Path | None = None) -> dict:
    out = model / "audits" / "robustness"
    cmd = TRUSTFIT + ["audit", "robustness", "--model", str(model), "--data", str(data), "--families",
                      ",".join(families), "--out", str(out), "--quiet"]
    if limit:
        cmd += ["--limit", str(limit)]
    if inventory:
        cmd += ["--inventory", str(inventory)]
    subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL)
    return json.loads((out / "result.json").read_text())


def fpb_split() -> Path:
    d = RESULTS / "robustness" / "fpb_data"
    if not (d / "dev.jsonl").exists():
        subprocess.run(TRUSTFIT + ["split", "--input", str(DATA / "financial_phrasebank/Sentences_50Agree.txt"),
                                   "--out", str(d)], check=True, env=ENV, stdout=subprocess.DEVNULL)
    return d


def setup_textattack() -> None:
    """A separate venv for TextAttack 0.3.11: it needs flair, which needs transformers < 5 (trustfit
    runs 5.x), and pip's resolver backtracks into building old scikit-learn from source when
    asked for everything at once, so textattack goes in without dependencies and they follow,
    pinned where needed. TextAttack reads NLTK's English stop words at import (no download
    here): the venv gets trustfit's list (the same common English list) in their place."""
    if not (TA_VENV / "bin/python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(TA_VENV)], check=True)
    pip = [str(TA_VENV / "bin/python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + ["--no-deps", "textattack==0.3.11"], check=True)
    subprocess.run(pip + ["transformers>=4.40,<5", "huggingface-hub<1.0", "datasets<4.5", "flair", "requests", "numpy",
                          "scipy", "pandas", "tqdm", "nltk", "more-itertools", "lru-dict", "editdistance", "Levenshtein",
                          "terminaltables", "num2words", "word2number", "lemminflect", "jieba", "pinyin", "click",
                          "OpenHowNet", "language_tool_python", "bert-score"], check=True)
    from trustfit.robust.perturb.word_sub import STOP_WORDS

    stop = TA_VENV / "nltk_data/corpora/stopwords/english"
    stop.parent.mkdir(parents=True, exist_ok=True)
    stop.write_text("\n".join(sorted(STOP_WORDS)) + "\n")


def run_textattack(model: Path, data: Path, limit: int, budget: int) -> dict:
    if not (TA_VENV / "bin/python").exists():
        return {"error": f"no textattack venv at {TA_VENV}; run bench/robustness.py --setup-textattack"}
    proc = subprocess.run([str(TA_VENV / "bin/python"), str(ROOT / "bench/textattack_child.py"), str(model), str(data),
                           str(limit), str(budget)], capture_output=True, text=True, env={**ENV, "PYTHONPATH": str(ROOT / "src")})
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1,000 sentences, 1 epoch, 300 dev sentences")
    ap.add_argument("--train-sentences", type=int, default=0, help="first N CoNLL-2003 train sentences (0: all)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--dev-limit", type=int, default=None, help="audit only the first N dev sentences")
    ap.add_argument("--fpb-limit", type=int, default=100,
                    help="FPB dev examples attacked (TextAttack takes about 3 s an example here)")
    ap.add_argument("--fpb-epochs", type=int, default=3)
    ap.add_argument("--skip-ner", action="store_true")
    ap.add_argument("--skip-fpb", action="store_true")
    ap.add_argument("--textattack", action="store_true", help="also run the TextAttack cross-check")
    ap.add_argument("--setup-textattack", action="store_true", help="create the TextAttack venv and exit")
    args = ap.parse_args()
    if args.setup_textattack:
        setup_textattack()
        return
    if args.quick:
        args.train_sentences, args.epochs, args.dev_limit, args.fpb_limit, args.fpb_epochs = 1000, 1, 300, 30, 1
    work = RESULTS / "robustness"
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"settings": vars(args), "ner": {}, "fpb": {}}
    ner_rows = [["training", "steps", "train s", "s / epoch", "time vs normal", "clean F1"] + [f"F1 {f}" for f in NER_FAMILIES]]
    if not args.skip_ner:
        train_file = slice_conll(DATA / "conll2003/train.txt", work / "train.txt", args.train_sentences)
        dev = DATA / "conll2003/valid.txt"
        for name, extra in NER_CONFIGS.items():
            out = work / ("ner-" + "".join(c if c.isalnum() else "_" for c in name))
            print(f"NER: {name}", file=sys.stderr, flush=True)
            extra = [x.format(augment_steps=result["ner"].get("augment typo,entity-swap", {}).get("training", {}).get("steps"))
                     for x in extra]
            t = train(["--train", str(train_file), "--dev", str(dev), "--epochs", str(args.epochs), *extra], out)
            a = audit(out, dev, NER_FAMILIES, args.dev_limit, inventory=train_file)
            result["ner"][name] = {"training": t, "clean": a["clean"]["value"], "examples": a["examples"],
                                   "families": {f: {"perturbed": v["perturbed"], "attack_success_rate": v["attack_success_rate"],
                                                    "constraints": v["constraints"]} for f, v in a["families"].items()}}
        base = result["ner"]["normal"]["training"]["train_s"]
        for name, r in result["ner"].items():
            t = r["training"]
            r["cost_vs_normal"] = round(t["train_s"] / base, 2)
            per_epoch = "–" if "--max-steps" in " ".join(NER_CONFIGS[name]) else f"{t['s_per_epoch']:.1f}"
            ner_rows.append([name, str(t["steps"]), f"{t['train_s']:.0f}", per_epoch, f"{r['cost_vs_normal']:.2f}x",
                             pct(r["clean"])] + [pct(r["families"][f]["perturbed"]["value"]) for f in NER_FAMILIES])
        normal = result["ner"]["normal"]
        result["ner_gains_vs_normal"] = {
            name: {"clean": round(100 * (r["clean"] - normal["clean"]), 2),
                   **{f: round(100 * (r["families"][f]["perturbed"]["value"] - normal["families"][f]["perturbed"]["value"]), 2)
                      for f in NER_FAMILIES}} for name, r in result["ner"].items() if name != "normal"}
    fpb_rows = [["FPB training", "clean accuracy", "accuracy under typo", "accuracy under word-sub",
                 "word-sub success", "queries / example"]]
    if not args.skip_fpb:
        d = fpb_split()
        for name, extra in FPB_CONFIGS.items():
            out = work / f"fpb-{name}"
            print(f"FPB: {name}", file=sys.stderr, flush=True)
            t = train(["--task", "classify", "--train", str(d / "train.jsonl"), "--dev", str(d / "dev.jsonl"),
                       "--lr", "3e-4", "--epochs", str(args.fpb_epochs), *extra], out)
            a = audit(out, d / "dev.jsonl", FPB_FAMILIES, args.fpb_limit)
            ws = a["families"]["word-sub"]
            result["fpb"][name] = {"training": t, "clean": a["clean"]["value"], "examples": a["examples"],
                                   "families": a["families"]}
            fpb_rows.append([name, pct(a["clean"]["value"]), pct(a["families"]["typo"]["perturbed"]["value"]),
                             pct(ws["perturbed"]["value"]), f"{pct(ws['attack_success_rate'])} % of {ws['attacked_examples']}",
                             f"{ws['queries_per_example']:.1f}"])
        if args.textattack:
            print("TextAttack cross-check", file=sys.stderr, flush=True)
            ta = run_textattack(work / "fpb-normal", d / "dev.jsonl", args.fpb_limit,
                                result["fpb"]["normal"]["families"]["word-sub"]["constraints"]["query_budget_per_example"])
            result["textattack"] = ta
            for recipe, r in (ta.get("recipes") or {}).items():
                fpb_rows.append([f"normal, TextAttack {recipe}", pct(r["clean_accuracy"]), "", pct(r["attacked_accuracy"]),
                                 f"{pct(r['success_rate'])} % of {r['attacked']}", f"{r['queries_per_example']:.1f}"])
    table = ner_rows + [[""] * len(ner_rows[0])] + [r + [""] * (len(ner_rows[0]) - len(r)) for r in fpb_rows]
    write_results("robustness", result, table)
    if "ner_gains_vs_normal" in result:
        print(json.dumps(result["ner_gains_vs_normal"], indent=2))
    if "textattack" in result and "error" in result["textattack"]:
        print("TextAttack:", result["textattack"]["error"][-500:], file=sys.stderr)


if __name__ == "__main__":
    main()
