"""The experiment pipeline and the model card on the tiny BERT: stages, skipping and re-running
by hash, `--from`, a failing audit recorded without losing the rest, validation that lists every
problem at once, tracking (TensorBoard, MLflow), and the card: HF metadata, no placeholders,
README numbers equal card.json, card.html rendered in headless Chromium."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import synthetic_sentence, write_synthetic_ner
from trustfit.cli import app

runner = CliRunner()


def invoke(args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def ner_files(tmp_path_factory):
    return write_synthetic_ner(tmp_path_factory.mktemp("exp"), 3, train=300, dev=20, test=20)


def experiment(d: Path, model: Path, **extra) -> Path:
    text = f'''name = "tiny"
out = "{d / 'run'}"
track = "{extra.get("track", "none")}"

[train]
model = "{model}"
train = "train.txt"
dev = "dev.txt"
epochs = 5
batch_size = 16
lr = 3e-3
precision = "fp32"

[evaluate]
files = ["test.txt"]

[audits.robustness]
data = "dev.txt"
families = ["typo", "case", "entity-swap"]

[audits.explain]
data = "{extra.get("audit_data", "dev.txt")}"
n = 4
methods = ["gxi", "random"]

[audits.fairness]
data = "dev.txt"
swaps = ["names"]
group_terms = ["gender"]
resamples = 200

[audits.privacy]
data = "test.txt"
reference = "none"
candidates = 50
resamples = 200

[report]
title = "tiny test model"
intended_use = "Tests."
'''
    p = d / extra.get("name", "exp.toml")
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def finished_run(ner_files, tiny_model_dir):
    exp = experiment(ner_files, tiny_model_dir, track="tensorboard")
    r = invoke(["run", exp, "--quiet"])
    assert r.exit_code == 0, r.output
    assert "model card:" in r.output
    return ner_files / "run", exp


def test_card_files_and_metadata(finished_run):
    run, _ = finished_run
    card = json.loads((run / "card/card.json").read_text())
    md = (run / "card/README.md").read_text()
    assert card["task"] == "ner" and card["dev"]["value"] > 0 and len(card["evaluations"]) == 1
    assert card["audits"]["explain"]["status"] == "done"
    priv = card["audits"]["privacy"]
    assert priv["status"] == "done" and priv["members"] == 20 and "privacy_roc" in card["plots"]
    assert "Trained without differential privacy" in md
    fair = card["audits"]["fairness"]
    assert fair["status"] == "done" and fair["swaps"][0]["list"] == "names" and "fairness_fairness" in card["plots"]
    assert f"| names | data | {fair['swaps'][0]['sentences']} | PER_recall |" in md
    rob = card["audits"]["robustness"]
    assert rob["status"] == "done" and set(rob["families"]) == {"typo", "case", "entity-swap"}
    assert "max_words_per_sentence: 2" in rob["families"]["typo"]["constraints"]
    readme = (run / "card/README.md").read_text()
    assert "| entity-swap |" in readme and "robustness_robustness" in card["plots"]
    front = yaml.safe_load(md.split("---")[1])
    assert front["pipeline_tag"] == "token-classification" and front["library_name"] == "transformers"
    results = front["model-index"][0]["results"]
    assert results[0]["metrics"][0]["value"] == card["dev"]["value"]
    assert results[1]["metrics"][0]["value"] == card["evaluations"][0]["value"]
    assert "More information needed" not in md and "TODO" not in md and "n/a" not in md.split("## Robustness")[0]
    assert "| loss threshold |" in md.split("## Privacy")[1].split("##")[0]
    # every number of card.json's main results is printed in README.md, the same
    for v in [card["dev"]["value"], card["evaluations"][0]["value"]] + [t["f1"] for t in card["dev"]["per_type"].values()]:
        assert f"{v:,.2f}" in md
    for m, v in card["audits"]["explain"]["methods"].items():
        assert f"| {m} | {v['comprehensiveness']:,.3f} |" in md
    for f, v in rob["families"].items():
        assert f"| {f} | {v['clean']:,.2f} | {v['perturbed']:,.2f}" in md
    assert any("not evaluated" in l for l in card["limitations"]) and all(re.search(r"\d", l) or "not evaluated" in l
                                                                        for l in card["limitations"])
    assert (run / "model/README.md").read_text() == md and (run / "model/card.json").exists()


def test_rerun_skips_and_changed_input_reruns(finished_run, ner_files):
    run, exp = finished_run
    r = invoke(["run", exp, "--quiet"])
    assert r.exit_code == 0, r.output
    for stage in ("train", "evaluate", "audit.explain"):
        assert f"{stage}: unchanged" in r.output
    test = ner_files / "test.txt"
    test.write_text(test.read_text() + "Maria B-PER\nLopez I-PER\n\n")
    r = invoke(["run", exp, "--quiet"])
    assert "train: unchanged" in r.output and "evaluate: running" in r.output and "audit.explain: unchanged" in r.output
    r = invoke(["run", exp, "--quiet", "--from", "audit"])
    assert "evaluate: unchanged" in r.output and "audit.explain: running" in r.output and "report: running" in r.output
    r = invoke(["run", exp, "--from", "fairness"])
    assert r.exit_code == 2 and "stages are train, evaluate, audit.robustness, audit.explain, audit.fairness, audit.privacy, report" in r.output


def test_tensorboard_tracking(finished_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = finished_run
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "dev/f1" in tags and "train/words_per_second_overall" in tags
    assert any(t.startswith("audit/explain/") for t in tags)


def test_failing_audit_is_recorded_and_the_rest_kept(ner_files, tiny_model_dir, tmp_path):
    d = tmp_path / "f"
    shutil.copytree(ner_files, d, ignore=shutil.ignore_patterns("run"))
    (d / "bad.txt").write_text("Maria B-PER extra\nthis line has three columns\n")
    exp = experiment(d, tiny_model_dir, audit_data="bad.txt")
    r = invoke(["run", exp, "--quiet"])
    assert r.exit_code == 0, r.output
    assert "audit.explain: FAILED" in r.output
    card = json.loads((d / "run/card/card.json").read_text())
    assert card["audits"]["explain"]["status"] == "failed" and "bad.txt" in card["audits"]["explain"]["error"]
    assert card["dev"]["value"] is not None and card["evaluations"]
    assert "The audit failed" in (d / "run/card/README.md").read_text()


def test_experiment_file_problems_listed_at_once(tmp_path, ner_files):
    p = tmp_path / "bad.toml"
    p.write_text(f'''name = "x"
outt = "run"
[train]
task = "ner"
train = "{ner_files / "train.txt"}"
dev = "missing_dev.txt"
epoch = 2
calibrate = true
[audits.privacy]
data = "x"
frob = 1
''')
    r = invoke(["run", p])
    assert r.exit_code == 2
    assert "unknown key 'outt'; did you mean 'out'?" in r.output and "unknown key 'audits.privacy.frob'" in r.output
    p.write_text(p.read_text().replace('outt = "run"\n', "").replace("[audits.privacy]\ndata = \"x\"\nfrob = 1\n", ""))
    r = invoke(["run", p])
    assert r.exit_code == 2, r.output
    assert "unknown key 'train.epoch'; did you mean 'epochs'?" in r.output
    assert "missing_dev.txt: no such file" not in r.output or "train.dev" in r.output
    p.write_text(p.read_text().replace("epoch = 2\n", ""))
    r = invoke(["run", p])
    assert "train.dev:" in r.output and "no such file" in r.output and "train.calibrate: applies to classification" in r.output


def test_classification_with_split_stage_and_mlflow(tmp_path, tiny_model_dir):
    rng = random.Random(9)
    rows = [{"text": synthetic_sentence(rng, lab), "label": lab} for lab in ("positive", "negative") for _ in range(150)]
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({
        "name": "kw", "out": str(tmp_path / "run"), "track": "mlflow",
        "split": {"input": "all.jsonl", "dev": 0.2, "test": 0.2},
        "train": {"task": "classify", "model": str(tiny_model_dir), "train": "split:train", "dev": "split:dev",
                  "epochs": 3, "batch_size": 16, "lr": 3e-3, "precision": "fp32", "calibrate": True},
        "evaluate": {"files": ["split:test"]},
        "audits": {"explain": {"data": "split:test", "n": 3, "methods": ["gxi"]}}}))
    r = invoke(["run", tmp_path / "exp.yaml", "--quiet"])
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "run/card/card.json").read_text())
    assert card["task"] == "classify" and card["dev"]["ece"] is not None and card["evaluations"][0]["value"] is not None
    assert json.loads((tmp_path / "run/data/split_report.json").read_text())["sizes"]["test"] == 60
    assert set(card["evaluations"][0]["answered_at_precision"]) == {"95", "99"}
    assert "answered automatically (router)" in (tmp_path / "run/card/README.md").read_text()
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=(tmp_path / "run/mlruns").resolve().as_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == "trustfit"]
    (run,) = client.search_runs([exp.experiment_id])
    assert "dev.accuracy" in run.data.metrics and run.data.params["experiment"] == "kw"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"README.md", "card.html", "card.json"}


def test_report_command(finished_run, tmp_path):
    run, _ = finished_run
    r = invoke(["report", run])
    assert r.exit_code == 0 and "card.html" in r.output
    r = invoke(["report", run / "model", "--out", tmp_path / "c"])
    assert r.exit_code == 0 and (tmp_path / "c/card.json").exists()
    r = invoke(["report", tmp_path])
    assert r.exit_code == 2 and "neither a run folder" in r.output


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is installed by scripts/setup.sh")
def test_card_html_renders_in_chromium(finished_run, tmp_path):
    from playwright.sync_api import sync_playwright

    run, _ = finished_run
    html = (run / "card/card.html").read_text()
    assert "http://" not in html.replace("http://www.w3.org", "") and "<script" not in html
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((run / "card/card.html").as_uri())
        imgs = page.locator("img")
        assert imgs.count() >= 3
        for i in range(imgs.count()):
            assert imgs.nth(i).evaluate("el => el.complete && el.naturalWidth > 0")
        assert page.locator(".trustfit-explanation").count() >= 1
        page.screenshot(path=str(tmp_path / "card.png"), full_page=True)
        browser.close()
    assert not errors, errors
    from PIL import Image

    im = Image.open(tmp_path / "card.png").convert("L")
    assert len(set(im.getdata())) > 20  # not blank
    shutil.copy(tmp_path / "card.png", Path("/tmp/trustfit_card.png"))


def test_the_card_says_whether_training_saw_document_context():
    from trustfit.report.card import limitations

    def card(has_documents):
        return {"task": "ner", "dev": None, "evaluations": [], "audits": {},
                "training": {"train_has_documents": has_documents,
                             "hyperparameters": {"pack": True, "context_tokens": 32, "pack_tokens": 64}}}

    with_docs = " ".join(limitations(card(True)))
    assert "Trained seeing neighbouring sentences of its document packed into inputs of up to 64" in with_docs
    without = " ".join(limitations(card(False)))
    assert "marks no documents (-DOCSTART-)" in without and "Trained seeing" not in without
    assert "Trained seeing" in " ".join(limitations(card(None)))  # not recorded: the settings
    assert "(the margins" not in with_docs  # a run before the schedule: margins in every epoch

    def scheduled(**hp):
        c = card(True)
        c["training"]["hyperparameters"].update(hp)
        return " ".join(limitations(c))

    assert "32 sub-tokens of document context on each side (the margins in the last of its 3 epochs)" in scheduled(
        epochs=3, context_from_epoch=-1, context_share=1.0)
    assert "(the margins on 25% of the packs from epoch 2 of 4)" in scheduled(epochs=4, context_from_epoch=1,
                                                                              context_share=0.25)
    assert "(the margins" not in scheduled(epochs=1, context_from_epoch=-1, context_share=1.0)
