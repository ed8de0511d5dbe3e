"""Classification end to end with the tiny BERT: split, train (class weights, calibration),
evaluate (JSON + PNG), predict top-k, text pairs, monitor and router commands, and errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trustfit.cli import app

runner = CliRunner()


def ok(args, **kw):
    r = runner.invoke(app, [str(a) for a in args], **kw)
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def fpb_split(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("fpb")
    r = ok(["split", "--input", data_dir / "financial_phrasebank/Sentences_AllAgree.txt", "--out", d,
            "--dev", "0.15", "--test", "0.15"])
    assert "texts with conflicting labels" in r.output
    # keep unit tests fast: a 300-row slice of train
    rows = (d / "train.jsonl").read_text().splitlines()
    (d / "small.jsonl").write_text("\n".join(rows[:300]) + "\n")
    return d


@pytest.fixture(scope="module")
def clf(tmp_path_factory, tiny_model_dir, fpb_split):
    out = tmp_path_factory.mktemp("clf") / "model"
    ok(["train", "--task", "classify", "--model", tiny_model_dir, "--train", fpb_split / "small.jsonl",
        "--dev", fpb_split / "dev.jsonl", "--out", out, "--epochs", "2", "--batch-size", "16", "--lr", "1e-3",
        "--class-weights", "--calibrate", "--quiet", "--precision", "fp32"])
    return out


def test_split_report(fpb_split):
    rep = json.loads((fpb_split / "split_report.json").read_text())
    assert rep["rows_in"] == 2264 and sum(rep["sizes"].values()) <= 2264
    assert set(rep["label_counts"]["test"]) == {"negative", "neutral", "positive"}


def test_trained_classifier_folder(clf):
    meta = json.loads((clf / "trustfit.json").read_text())
    assert meta["task"] == "classify" and meta["labels"] == ["negative", "neutral", "positive"]
    assert meta["temperature"] > 0 and set(meta["class_weights"]) == set(meta["labels"])
    dev = json.loads((clf / "dev_metrics.json").read_text())
    assert {"accuracy", "macro_f1", "per_class", "confusion", "ece", "uncalibrated", "calibrated"} <= set(dev)
    assert dev["calibrated"]["nll"] <= dev["uncalibrated"]["nll"] + 1e-6  # temperature fitted on dev NLL
    assert (clf / "confusion_matrix.png").stat().st_size > 1000 and (clf / "reliability.png").exists()


def test_pipeline_loads_classifier(clf):
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(clf), device="cpu")
    assert pipe("Profit rose 20 %")[0]["label"] in {"negative", "neutral", "positive"}


def test_evaluate_and_predict(clf, fpb_split, tmp_path):
    r = ok(["evaluate", "--model", clf, "--data", fpb_split / "test.jsonl", "--json", tmp_path / "m.json",
            "--plots", tmp_path, "--predictions", tmp_path / "p.jsonl"])
    assert "answered at 95 % precision" in r.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert len(m["confusion"]) == 3 and "coverage" in m["extra"]
    assert (tmp_path / "coverage_accuracy.png").exists()
    n_test = len((fpb_split / "test.jsonl").read_text().splitlines())
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == n_test
    r = ok(["predict", "--model", clf, "--top-k", "2", "-"], input="Profit rose.\nThe company cut 300 jobs.\n")
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(recs) == 2 and len(recs[0]["top_k"]) == 2
    assert recs[0]["label"] == recs[0]["top_k"][0]["label"] and 0 < recs[0]["score"] <= 1


def test_predict_rejects_empty_text(clf):
    r = runner.invoke(app, ["predict", "--model", str(clf), "-"], input="fine\n\n")
    assert r.exit_code == 2 and "lines 2 are empty" in r.output


def test_evaluate_rejects_unseen_labels(clf, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "x", "label": "bullish"}\n')
    r = runner.invoke(app, ["evaluate", "--model", str(clf), "--data", str(p)])
    assert r.exit_code == 2 and "labels never seen in training (bullish)" in r.output


def test_train_rejects_missing_label_column(tmp_path, tiny_model_dir, data_dir):
    r = runner.invoke(app, ["train", "--task", "classify", "--model", str(tiny_model_dir), "--train",
                            str(data_dir / "banking77/train.csv"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no column 'label'; the columns are 'text', 'category'" in r.output


def test_text_pairs(tmp_path, tiny_model_dir):
    rng = random.Random(0)
    rows = []
    for i in range(80):
        q = rng.choice(["card lost", "top up failed", "exchange rate"])
        c = q if rng.random() < 0.5 else rng.choice(["card lost", "top up failed", "exchange rate"])
        rows.append(json.dumps({"query": q, "candidate": c, "label": "match" if q == c else "other"}))
    p = tmp_path / "pairs.jsonl"
    p.write_text("\n".join(rows) + "\n")
    out = tmp_path / "m"
    ok(["train", "--task", "classify", "--model", tiny_model_dir, "--train", p, "--dev", p, "--out", out,
        "--text-column", "query", "--pair-column", "candidate", "--max-steps", "3", "--quiet", "--precision", "fp32"])
    meta = json.loads((out / "trustfit.json").read_text())
    assert meta["pair_column"] == "candidate"
    r = ok(["evaluate", "--model", out, "--data", p, "--quiet"])
    assert "accuracy" in r.output


def test_monitor_command(clf, data_dir, tmp_path):
    from trustfit.data.text import read_text_corpus

    c = read_text_corpus(data_dir / "financial_phrasebank/Sentences_AllAgree.txt")
    texts = [e.text for e in c.examples[:300]]
    lines = [json.dumps({"time": f"2026-01-01T{h:02d}:{m:02d}:00", "text": t, "topic": "x"})
             for (h, m), t in zip(((i // 60, i % 60) for i in range(300)), texts)]
    lines.insert(10, "broken line")
    stream = tmp_path / "news.jsonl"
    stream.write_text("\n".join(lines) + "\n")
    out = tmp_path / "mon"
    r = ok(["monitor", "--model", clf, "--input", stream, "--out", out, "--window", "20", "--baseline", "50",
            "--min-count", "10", "--min-baseline", "30"])
    assert "news.jsonl:11: skipped" in r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["items"] == 300 and s["skipped"] == 1 and set(s["per_topic"]) == {"overall", "x"}
    assert (out / "series.png").stat().st_size > 1000 and (out / "alerts.jsonl").exists()
    # stdin works too
    r = ok(["monitor", "--model", clf, "--out", tmp_path / "mon2"], input="\n".join(lines[:40]) + "\n")
    assert json.loads((tmp_path / "mon2/summary.json").read_text())["items"] == 39


def test_route_command(clf, tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("positive: Glad to hear it!\n")
    r = ok(["route", "--model", clf, "--answers", answers, "--threshold", "0.0", "-"], input="Profit rose.\n")
    rec = json.loads(r.stdout.splitlines()[0])
    assert rec["action"] in {"answer", "handoff"} and rec["top_k"]
    r = ok(["route", "--model", clf, "--threshold", "1.0", "-"], input="Profit rose.\n")
    assert json.loads(r.stdout)["action"] == "handoff"
    r = runner.invoke(app, ["route", "--model", str(clf), "--threshold", "1.5", "-"], input="x\n")
    assert r.exit_code == 2 and "threshold must be in [0, 1], got 1.5" in r.output
    answers.write_text("refund: sure\n")
    r = runner.invoke(app, ["route", "--model", str(clf), "--answers", str(answers), "-"], input="x\n")
    assert r.exit_code == 2 and "unknown intents refund" in r.output


def test_classify_resume_after_sigkill_and_config_file(tmp_path, tiny_model_dir, fpb_split):
    """The classification task runs on the same loop: config file, kill -9, --resume, same result."""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "clf.yaml"
    cfg.write_text(f"task: classify\ntrain: {fpb_split / 'small.jsonl'}\ndev: {fpb_split / 'dev.jsonl'}\n"
                   f"model: {tiny_model_dir}\nbatch_size: 16\nlr: 0.001\nepochs: 2\ncheckpoint_every: 4\n"
                   "precision: fp32\n")

    def run(out, *extra, env=None):
        return subprocess.run([sys.executable, "-m", "trustfit", "train", "--config", str(cfg), "--out", str(out),
                               "--quiet", *extra], capture_output=True, text=True, env={**os.environ, **(env or {})})

    assert run(tmp_path / "clean").returncode == 0
    assert run(tmp_path / "k", env={"TRUSTFIT_FAULT_KILL_AT_STEP": "10"}).returncode == -9
    r = run(tmp_path / "k", "--resume")
    assert r.returncode == 0, r.stderr
    a = json.loads((tmp_path / "clean/train_summary.json").read_text())
    b = json.loads((tmp_path / "k/train_summary.json").read_text())
    assert b["resumed"] and a["dev"]["accuracy"] == b["dev"]["accuracy"] and a["dev"]["confusion"] == b["dev"]["confusion"]
