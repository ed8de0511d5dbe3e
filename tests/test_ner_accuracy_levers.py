"""Accuracy levers for NER: IOB2-constrained Viterbi decoding (checked against brute force over
every valid sequence), layer-wise learning-rate decay and the weight average (EMA, checked
against the formula by hand)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from trustfit.data.tags import repair_iob2
from trustfit.predict.decode import argmax_iob2, viterbi_iob2
from trustfit.train.loop import layer_depth
from tests.conftest import _cli_ok

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _valid(tags) -> bool:
    return repair_iob2(tags) == list(tags)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n: st.lists(st.lists(st.floats(-6, 0), min_size=5, max_size=5),
                                                   min_size=n, max_size=n)))
def test_viterbi_is_the_best_valid_sequence(rows):
    lp = np.array(rows)
    best = viterbi_iob2(lp, LABELS)
    assert _valid(best)
    index = {t: i for i, t in enumerate(LABELS)}
    score = lambda tags: sum(lp[w, index[t]] for w, t in enumerate(tags))  # noqa: E731
    brute = max((list(t) for t in itertools.product(LABELS, repeat=len(lp)) if _valid(t)), key=score)
    assert score(best) == pytest.approx(score(brute))


def test_viterbi_keeps_a_confident_entity_whole_where_argmax_splits_it():
    # "New York Times": argmax says B-ORG, I-LOC, I-ORG; the valid best path is one ORG
    labels = ["O", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    p = np.log(np.array([[.01, .95, .01, .02, .01], [.01, .02, .45, .02, .50], [.01, .01, .96, .01, .01]]))
    assert argmax_iob2(p, labels) == ["B-ORG", "B-LOC", "B-ORG"]
    assert viterbi_iob2(p, labels) == ["B-ORG", "I-ORG", "I-ORG"]
    assert viterbi_iob2(np.zeros((0, 5)), labels) == []


def test_layer_depth_of_bert_parameters():
    assert layer_depth("bert.embeddings.word_embeddings.weight", 6) == 0
    assert layer_depth("bert.encoder.layer.0.attention.self.query.weight", 6) == 1
    assert layer_depth("bert.encoder.layer.5.output.dense.bias", 6) == 6
    assert layer_depth("classifier.weight", 6) == 7


def test_layer_lr_decay_groups(tiny_model_dir):
    from accelerate import Accelerator

    from trustfit.data.schema import LabelSchema
    from trustfit.models.backbone import load_token_classifier
    from trustfit.train.loop import LoopSettings, Trainer

    model = load_token_classifier(str(tiny_model_dir), LabelSchema.from_types(["PER"]))
    settings_ = LoopSettings(epochs=1, max_steps=None, batch_size=2, lr=1e-3, weight_decay=0.01, warmup_ratio=0,
                             max_grad_norm=1, seed=0, eval_every=None, checkpoint_every=10, pool_batches=1,
                             layer_lr_decay=0.5, save_checkpoints=False)

    class F(list):
        n_words = 1

    trainer = Trainer(model, [F([1, 2])] * 4, settings_, Accelerator(cpu=True), None, [], tiny_model_dir)
    lr_of = {}
    for g in trainer.optimizer.param_groups:
        for p in g["params"]:
            lr_of[p] = g["lr"]
    named = dict(model.named_parameters())
    n = model.config.num_hidden_layers  # 2: embeddings x 0.125, layer 0 x 0.25, layer 1 x 0.5, head x 1
    assert lr_of[named["classifier.weight"]] == pytest.approx(1e-3)
    assert lr_of[named["bert.encoder.layer.1.output.dense.weight"]] == pytest.approx(1e-3 * 0.5)
    assert lr_of[named["bert.embeddings.word_embeddings.weight"]] == pytest.approx(1e-3 * 0.5 ** (n + 1))
    bias_group = [g for g in trainer.optimizer.param_groups if any(p is named["classifier.bias"] for p in g["params"])]
    assert bias_group[0]["weight_decay"] == 0.0


def test_weight_average_follows_the_formula():
    from types import SimpleNamespace

    from trustfit.train.averaging import WeightAverage

    lin = torch.nn.Linear(1, 1, bias=False)
    trainer = SimpleNamespace(unwrapped_model=lin, state=SimpleNamespace(step=0), ckpt_dir=None)
    ema = WeightAverage(0.5)
    ema.on_train_start(trainer)
    expected = lin.weight.item()
    for t, value in enumerate([1.0, 2.0, 4.0], start=1):
        with torch.no_grad():
            lin.weight.fill_(value)
        ema.on_step_end(trainer)
        decay = min(0.5, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * value
    assert ema.shadow["weight"].item() == pytest.approx(expected)
    with ema.swapped_in(trainer):
        assert lin.weight.item() == pytest.approx(expected)
    assert lin.weight.item() == 4.0
    ema.on_train_end(trainer)
    assert lin.weight.item() == pytest.approx(expected)


def test_train_with_ema_saves_the_evaluated_average(tmp_path, tiny_model_dir, conll_slices):
    train, dev = conll_slices
    out = tmp_path / "m"
    _cli_ok(["train", "--model", tiny_model_dir, "--train", train, "--dev", dev, "--out", out, "--batch-size", "16",
             "--lr", "5e-4", "--quiet", "--precision", "fp32", "--epochs", "2", "--ema-decay", "0.9",
             "--layer-lr-decay", "0.8", "--decode", "argmax"])
    summary = json.loads((out / "train_summary.json").read_text())
    meta = json.loads((out / "trustfit.json").read_text())
    assert meta["encoding"]["decode"] == "argmax" and meta["config"]["ema_decay"] == 0.9
    best = max(h["f1"] for h in summary["history"])
    assert summary["dev"]["entity"]["micro"]["f1"] == pytest.approx(best)  # the saved model is the evaluated one


def test_evaluate_and_predict_take_the_decoding(ner_model, keyword_classifier, tmp_path):
    from typer.testing import CliRunner

    from trustfit.cli import app

    dev = ner_model.parent / "dev.txt"
    for how in ("viterbi", "argmax"):
        _cli_ok(["evaluate", "--model", ner_model, "--data", dev, "--decode", how, "--json", tmp_path / f"{how}.json",
                 "--quiet"])
        assert json.loads((tmp_path / f"{how}.json").read_text())["token_accuracy"] > 0.9
    runner = CliRunner()
    r = runner.invoke(app, ["evaluate", "--model", str(ner_model), "--data", str(dev), "--decode", "beam"])
    assert r.exit_code == 2 and "unknown decoding 'beam': use one of viterbi, argmax" in r.output
    r = runner.invoke(app, ["predict", "--model", str(keyword_classifier), "--decode", "argmax"], input="good\n")
    assert r.exit_code == 2 and "--decode applies to NER models only" in r.output
