"""Privacy: accounting against Google's dp-accounting, DP-SGD training on the tiny model (budget,
resume, LoRA, plain save), the membership and canary audit, and the personal-data scan."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import FILLER, write_conll, write_synthetic_ner

HF = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "trustfit", *map(str, args)], capture_output=True, text=True,
                          env={**HF, **(env or {})})


# -- accounting -----------------------------------------------------------------------------
@pytest.mark.parametrize("noise,q,steps", [(1.0, 32 / 14041, 439), (0.554, 256 / 14041, 162), (2.0, 0.01, 1000)])
def test_epsilon_matches_google_dp_accounting(noise, q, steps):
    import dp_accounting
    from dp_accounting.pld.pld_privacy_accountant import PLDAccountant
    from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant

    from trustfit.privacy.accounting import RDP_ORDERS, epsilon_spent

    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise)), steps)
    rdp = RdpAccountant(RDP_ORDERS)
    rdp.compose(event)
    assert round(epsilon_spent([(noise, q, steps)], 1e-5, "rdp"), 2) == round(rdp.get_epsilon(1e-5), 2)
    pld = PLDAccountant(value_discretization_interval=1e-4)
    pld.compose(event)
    assert abs(epsilon_spent([(noise, q, steps)], 1e-5, "prv") - pld.get_epsilon(1e-5)) < 0.006


def test_noise_search_and_budget_are_consistent():
    from trustfit.privacy.accounting import epsilon_spent, noise_for_epsilon, steps_within

    noise = noise_for_epsilon(3.0, 1e-5, 0.02, 150, "rdp")
    assert 2.9 < epsilon_spent([(noise, 0.02, 150)], 1e-5, "rdp") <= 3.0
    k = steps_within(3.0, 1e-5, noise * 0.8, 0.02, 150, "rdp")
    assert k < 150
    assert epsilon_spent([(noise * 0.8, 0.02, k)], 1e-5, "rdp") <= 3.0 < epsilon_spent([(noise * 0.8, 0.02, k + 1)],
                                                                                       1e-5, "rdp")


# -- configuration errors -------------------------------------------------------------------
@pytest.mark.parametrize("extra,message", [
    (["--dp-epsilon", "0"], "dp_epsilon: must be a number above 0"),
    (["--dp-epsilon", "-1"], "dp_epsilon: must be a number above 0"),
    (["--dp-epsilon", "8", "--pack"], "pack: under DP each training example must be one model input"),
    (["--dp-epsilon", "8", "--augment", "typo"], "augment: augmented copies put an example in the data more than once"),
    (["--dp-epsilon", "8", "--adversarial", "fgm"], "adversarial: adversarial steps add gradients"),
    (["--dp-epsilon", "8", "--precision", "bf16"], "precision: bf16 per-example norms"),
    (["--dp-delta", "1e-6"], "dp_delta: DP options need dp_epsilon (--dp-epsilon) or dp_noise"),
    (["--dp-epsilon", "8", "--dp-train", "top-x"], "dp_train: unknown value 'top-x'"),
    (["--dp-epsilon", "8", "--dp-delta", "0.1"], "dp_delta: 0.1 must be above 0 and below 1/N = 1/40"),
])
def test_dp_bad_input_is_refused_clearly(tmp_path, tiny_model_dir, extra, message):
    write_synthetic_ner(tmp_path, 0, t=40)
    r = _cli("train", "--model", tiny_model_dir, "--train", tmp_path / "t.txt", "--out", tmp_path / "o", "--quiet",
             *extra)
    assert r.returncode != 0 and message in r.stderr.replace("\n", " ").replace("│", " ").replace("  ", " ") \
        or message in " ".join(r.stderr.split()), r.stderr


def test_dp_refuses_the_length_bucketed_sampler_and_context():
    from trustfit.config import build_config
    from trustfit.errors import ConfigError

    with pytest.raises(ConfigError, match="pool_batches: the length-bucketed sampler voids the Poisson sampling"):
        build_config(None, dict(train="t", out="o", dp_epsilon=8, pool_batches=4))
    with pytest.raises(ConfigError, match="context_tokens: under DP each training example must be one model input .*document context"):
        build_config(None, dict(train="t", out="o", dp_noise=1.0, context_tokens=16))
    cfg = build_config(None, dict(train="t", out="o", dp_epsilon=8))  # the defaults the guarantee needs
    assert (cfg.pack, cfg.context_tokens, cfg.precision, cfg.dp_train, cfg.lr) == (False, 0, "fp32", "lora", 1e-2)


def test_a_layer_opacus_cannot_train_is_named():
    import torch

    from trustfit.errors import ConfigError
    from trustfit.privacy.dp import check_dp_model

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    with pytest.raises(ConfigError, match=r"(?s)1 \(BatchNorm1d\): BatchNorm cannot support.*freeze them"):
        check_dp_model(model)


@pytest.mark.parametrize("head", ["token", "sequence"])
def test_book_keeping_clipping_equals_opacus_ghost_clipping(head):
    """One backward pass (book-keeping) and Opacus' two give the same clipped gradient sum and norms,
    with every parameter trained (word, position and token-type embeddings, LayerNorms, Linears)."""
    import copy

    import torch
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.optimizers import DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
    from transformers import BertConfig, BertForSequenceClassification, BertForTokenClassification

    from trustfit.privacy.bk import BookKeepingClipper
    from trustfit.privacy.dp import per_example_loss, with_explicit_ids

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64, num_labels=5, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    model = (BertForTokenClassification if head == "token" else BertForSequenceClassification)(cfg).train()
    ids = torch.randint(1, 200, (6, 11))
    ids[0, 8:] = 0  # padding
    ids[1, 3] = ids[1, 5]  # one word twice: its embedding row adds up
    mask = (ids != 0).long()
    labels = torch.randint(0, 5, (6, 11)) if head == "token" else torch.randint(0, 5, (6,))
    if head == "token":
        labels[mask == 0] = -100
    batch = with_explicit_ids({"input_ids": ids, "attention_mask": mask, "labels": labels},
                              ["position_ids", "token_type_ids"])
    twin = copy.deepcopy(model)
    norms = BookKeepingClipper(model, 0.1).clipped_backward(per_example_loss(model, batch))
    gsm = GradSampleModuleFastGradientClipping(twin, batch_first=True, loss_reduction="mean", max_grad_norm=0.1)
    opt = DPOptimizerFastGradientClipping(torch.optim.SGD(twin.parameters(), lr=0.1), noise_multiplier=0.0,
                                          max_grad_norm=0.1, expected_batch_size=6)
    DPTensorFastGradientClipping(gsm, opt, per_example_loss(gsm, batch), "mean").backward()
    assert torch.allclose(norms, gsm.per_sample_gradient_norms, rtol=1e-5)
    assert (norms > 0.1).all()  # every example was clipped: the comparison covers the scaling
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-7), name


def test_book_keeping_names_a_layer_it_does_not_cover():
    import torch

    from trustfit.errors import ConfigError
    from trustfit.privacy.bk import BookKeepingClipper

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Conv1d(4, 4, 1))
    with pytest.raises(ConfigError, match=r"not: 1 \(Conv1d\); use --dp-clipping ghost"):
        BookKeepingClipper(model, 1.0)


# -- DP training ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ner_files(tmp_path_factory):
    return write_synthetic_ner(tmp_path_factory.mktemp("dpdata"), 1, train=60, holdout=60, dev=20)


def _dp_train(tiny_model_dir, d, out, *extra, env=None):
    return _cli("train", "--model", tiny_model_dir, "--train", d / "train.txt", "--dev", d / "dev.txt", "--out", out,
                "--quiet", "--dp-batch-size", "16", "--batch-size", "8", "--dp-delta", "1e-3", *extra, env=env)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_dp_training_records_its_guarantee_and_saves_a_plain_model(tmp_path, tiny_model_dir, ner_files):
    r = _dp_train(tiny_model_dir, ner_files, tmp_path / "m", "--dp-epsilon", "2", "--epochs", "2",
                  "--dp-accountant", "rdp", "--dp-train", "all")
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "m/trustfit.json").read_text())
    # the saved (best dev) model carries the epsilon spent when it was saved
    assert meta["privacy"]["steps"] == meta["best_step"] and meta["privacy"]["epsilon"] <= 2.0
    summary = json.loads((tmp_path / "m/train_summary.json").read_text())
    p = summary["privacy"]
    assert p["sampling"] == "poisson" and p["sample_rate"] == 16 / 60 and p["steps"] == 6
    # DP steps split their time as plain ones do (clipping counts as backward, noise as optimizer)
    assert all(summary["phase_seconds"][k] > 0 for k in ("collate", "forward", "backward", "optimizer"))
    assert 1.8 < p["epsilon"] <= 2.0 and p["accountant"] == "rdp" and p["delta"] == 1e-3
    assert [e["epoch"] for e in p["epochs"]] == [1, 2]  # logged each epoch
    assert not any(k.startswith("_module") or "lora" in k for k in _weights(tmp_path / "m"))
    assert "epsilon" in r.stderr
    from trustfit.report.card import _dp_summary  # the model card's line

    assert _dp_summary(meta["privacy"]).startswith(f"epsilon {meta['privacy']['epsilon']:.2f} at delta 0.001 (rdp")
    logged = [json.loads(l) for l in (tmp_path / "m/log.jsonl").read_text().splitlines()]
    assert [round(x["epsilon"], 6) for x in logged if x["event"] == "privacy"] == [round(e["epsilon"], 6)
                                                                                   for e in p["epochs"]]


def test_dp_training_stops_before_the_budget(tmp_path, tiny_model_dir, ner_files):
    r = _dp_train(tiny_model_dir, ner_files, tmp_path / "m", "--dp-noise", "0.7", "--dp-epsilon", "3",
                  "--epochs", "10", "--dp-accountant", "rdp", "--dp-clipping", "ghost")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "m/train_summary.json").read_text())["privacy"]
    assert s["stopped_by_budget"] and s["steps"] < s["planned_steps"] and s["epsilon"] <= 3.0
    assert "ghost" in s["clipping"]
    from trustfit.privacy.accounting import epsilon_spent

    assert epsilon_spent([(0.7, s["sample_rate"], s["steps"] + 1)], 1e-3, "rdp") > 3.0


def test_dp_resume_after_kill_restores_the_accountant(tmp_path, tiny_model_dir, ner_files):
    args = ("--dp-epsilon", "4", "--epochs", "3", "--checkpoint-every", "4", "--dp-accountant", "rdp")
    assert _dp_train(tiny_model_dir, ner_files, tmp_path / "clean", *args).returncode == 0
    killed = _dp_train(tiny_model_dir, ner_files, tmp_path / "k", *args, env={"TRUSTFIT_FAULT_KILL_AT_STEP": "6"})
    assert killed.returncode == -9
    resumed = _dp_train(tiny_model_dir, ner_files, tmp_path / "k", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "clean/train_summary.json").read_text())["privacy"]
    b = json.loads((tmp_path / "k/train_summary.json").read_text())["privacy"]
    assert b["history"] == a["history"] and b["epsilon"] == a["epsilon"] and b["steps"] == a["steps"] == 9
    wa, wb = _weights(tmp_path / "clean"), _weights(tmp_path / "k")
    assert all(np.allclose(wa[k].numpy(), wb[k].numpy(), atol=1e-6) for k in wa)


def test_lora_under_dp_is_saved_merged_and_loads_anywhere(tmp_path, tiny_model_dir, ner_files):
    r = _dp_train(tiny_model_dir, ner_files, tmp_path / "m", "--dp-noise", "0.5", "--epochs", "1", "--dp-train", "lora",
                  "--lr", "1e-2")
    assert r.returncode == 0, r.stderr
    assert not any("lora" in k or "base_layer" in k for k in _weights(tmp_path / "m"))
    from trustfit.models.backbone import load_trained

    model, *_ = load_trained(tmp_path / "m")  # a plain BertForTokenClassification
    assert type(model).__name__ == "BertForTokenClassification"
    s = json.loads((tmp_path / "m/train_summary.json").read_text())
    assert s["privacy"]["trained"] == "lora" and s["privacy"]["trained_parameters"] < 20000


# -- membership inference and canaries ------------------------------------------------------
def _overfit(tiny_model_dir, d, out, *extra):
    r = _cli("train", "--model", tiny_model_dir, "--train", d / "train.txt", "--out", out, "--quiet", "--precision",
             "fp32", "--batch-size", "8", "--context-tokens", "0", "--no-pack", "--layer-lr-decay", "1", *extra)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def mia_files(tmp_path_factory):
    """Sentences with random filler and random entity types: the tags can only be memorised."""
    d = tmp_path_factory.mktemp("mia")
    rng = random.Random(3)

    def sentence():
        words = rng.sample(FILLER, 6)
        return [(w, rng.choice(["O", "O", "B-PER", "B-LOC"])) for w in words]

    sents = [sentence() for _ in range(80)]
    write_conll(d / "train.txt", sents[:40])
    write_conll(d / "holdout.txt", sents[40:])
    return d


def test_membership_auc_is_high_when_overfit_and_near_chance_under_dp(tmp_path, tiny_model_dir, mia_files):
    overfit = _overfit(tiny_model_dir, mia_files, tmp_path / "overfit", "--epochs", "40", "--lr", "5e-3")
    private = _overfit(tiny_model_dir, mia_files, tmp_path / "dp", "--epochs", "40", "--dp-epsilon", "0.5",
                       "--dp-delta", "1e-3", "--dp-batch-size", "10", "--dp-train", "all", "--lr", "5e-3")
    aucs = {}
    for name, model in (("overfit", overfit), ("dp", private)):
        r = _cli("audit", "privacy", "--model", model, "--train", mia_files / "train.txt", "--holdout",
                 mia_files / "holdout.txt", "--reference", "none", "--quiet", "--resamples", "200")
        assert r.returncode == 0, r.stderr
        res = json.loads((model / "audits/privacy/result.json").read_text())
        aucs[name] = res["membership"]["attacks"]["loss threshold"]
    assert aucs["overfit"]["auc"] > 0.8, aucs
    assert abs(aucs["dp"]["auc"] - 0.5) < 0.15 and aucs["dp"]["auc_ci"][0] < 0.5 < aucs["dp"]["auc_ci"][1], aucs
    assert (tmp_path / "overfit/audits/privacy/roc.png").stat().st_size > 1000


def test_membership_metrics_against_hand_computed_values():
    from trustfit.privacy.membership import attack_metrics, tpr_at_fpr

    res = attack_metrics(np.array([3.0, 2.0, 0.5]), np.array([1.0, 0.0, -1.0]), resamples=10)
    assert res["auc"] == pytest.approx(8 / 9)  # 8 of the 9 member/non-member pairs are ordered right
    assert tpr_at_fpr(np.array([0, 0, 0.5, 1]), np.array([0, 0.4, 0.9, 1]), 0.01) == 0.4


def test_calibrated_attack_trains_a_reference_and_reports_its_settings(tmp_path, tiny_model_dir, mia_files):
    model = _overfit(tiny_model_dir, mia_files, tmp_path / "m", "--epochs", "20", "--lr", "5e-3")
    r = _cli("audit", "privacy", "--model", model, "--train", mia_files / "train.txt", "--holdout",
             mia_files / "holdout.txt", "--quiet", "--resamples", "100")
    assert r.returncode == 0, r.stderr
    res = json.loads((model / "audits/privacy/result.json").read_text())
    m = res["membership"]
    assert m["reference"]["used"] and m["reference"]["train_examples"] == 40
    assert m["members"] == m["non_members"] == 20
    assert set(m["attacks"]) == {"loss threshold", "calibrated (reference model)"}
    assert res["training_privacy"] == {"differential_privacy": False}
    assert [h["name"] for h in res["headline"]][-1] == "DP epsilon"


def test_canary_repeated_in_an_overfit_model_is_exposed(tmp_path, tiny_model_dir, ner_files):
    model = _overfit(tiny_model_dir, ner_files, tmp_path / "m", "--epochs", "30", "--lr", "5e-3", "--canaries", "2",
                     "--canary-repeats", "20")
    record = json.loads((model / "canaries.json").read_text())
    assert len(record["canaries"]) == 2 and record["repeats"] == 20
    r = _cli("audit", "privacy", "--model", model, "--train", ner_files / "train.txt", "--holdout",
             ner_files / "holdout.txt", "--reference", "none", "--candidates", "200", "--quiet", "--resamples", "50")
    assert r.returncode == 0, r.stderr
    res = json.loads((model / "audits/privacy/result.json").read_text())["canaries"]["results"]
    assert all(c["exposure"] > 5 for c in res), res  # ranked in the top 3 % of 200 candidates
    assert all(c["candidates"] == 200 and c["exposure"] <= c["exposure_max"] for c in res)


def test_holdout_overlapping_training_is_refused_or_cleaned(tmp_path, ner_model, ner_files):
    same = _cli("audit", "privacy", "--model", ner_model, "--train", ner_files / "train.txt", "--holdout",
                ner_files / "train.txt", "--quiet")
    assert same.returncode != 0 and "is the same file as --train" in same.stderr
    from trustfit.data.conll import read_conll
    from trustfit.errors import DataError
    from trustfit.privacy.audit import split_holdout

    train = read_conll(ner_files / "train.txt").sentences
    hold = read_conll(ner_files / "holdout.txt").sentences
    clean, removed = split_holdout(train, hold[:50] + train[:5], "t", "h")
    assert removed == 5 and len(clean) == 50
    with pytest.raises(DataError, match="examples are also in t: the holdout must be data the model was not"):
        split_holdout(train, train[:30] + hold[:5], "t", "h")


# -- personal-data scan ---------------------------------------------------------------------
PLANTED = ("Write to jane.doe@example.com or call (415) 555-2671 today.\n"
           "Card 4111 1111 1111 1111 was charged; 4111 1111 1111 1112 was not.\n"
           "Pay DE89 3704 0044 0532 0130 00 please, not DE89 3704 0044 0532 0130 01.\n"
           "Order 12345 went to 555-0100 on 2024-01-01 for john@localhost.\n")


def test_scan_finds_planted_values_and_ignores_look_alikes(tmp_path):
    from trustfit.privacy.scan import Scanner

    (tmp_path / "a.txt").write_text(PLANTED)
    res = Scanner().scan(tmp_path / "a.txt", redact=tmp_path / "r.txt")
    assert res["counts"] == {"email": 1, "phone": 1, "card": 1, "iban": 1}
    assert [(f["kind"], f["line"]) for f in res["findings"]] == [("email", 1), ("phone", 1), ("card", 2), ("iban", 3)]
    red = (tmp_path / "r.txt").read_text().splitlines()
    assert red[0] == "Write to [EMAIL] or call [PHONE] today."
    assert "4111 1111 1111 1112" in red[1] and "[CARD]" in red[1]
    assert red[2] == "Pay [IBAN] please, not DE89 3704 0044 0532 0130 01."
    assert red[3] == PLANTED.splitlines()[3]  # a fictional 555-0100, a bare order number, a local address


def test_scan_keeps_conll_columns_and_csv_rows(tmp_path, ner_model):
    from trustfit.privacy.scan import Scanner

    write_conll(tmp_path / "a.conll", [[("the", "O"), ("Lucas", "B-PER"), ("Silva", "I-PER"), ("at", "O"),
                                        ("l.silva@example.org", "O"), ("in", "O"), ("Paris", "B-LOC"), (".", "O")]])
    res = Scanner(ner_model=str(ner_model)).scan(tmp_path / "a.conll", redact=tmp_path / "r.conll")
    assert res["format"] == "conll" and res["counts"]["email"] == 1 and res["counts"]["person"] == 1
    lines = (tmp_path / "r.conll").read_text().splitlines()
    assert lines[:5] == ["the O", "[PER] B-PER", "[PER] I-PER", "at O", "[EMAIL] O"] and lines[6] == "Paris B-LOC"
    (tmp_path / "a.csv").write_text('id,text,label\n1,"call +44 20 7946 0958, ok",pos\n2,nothing here,neg\n')
    res = Scanner().scan(tmp_path / "a.csv", redact=tmp_path / "r.csv")
    assert res["findings"][0]["line"] == 2 and res["findings"][0]["field"] == "text"
    assert (tmp_path / "r.csv").read_text() == 'id,text,label\n1,"call [PHONE], ok",pos\n2,nothing here,neg\n'
    (tmp_path / "a.jsonl").write_text('{"text": "iban GB82 WEST 1234 5698 7654 32", "label": "x"}\n{"text": oops}\n')
    r = _cli("scan", tmp_path / "a.jsonl")
    assert r.returncode != 0 and "a.jsonl:2: not valid JSON" in r.stderr
    (tmp_path / "b.txt").write_bytes("caf\xe9 au lait@neutral\n".encode("latin-1"))
    r = _cli("scan", tmp_path / "b.txt")
    assert r.returncode != 0 and "not utf-8 text (byte 3); pass --encoding" in r.stderr
    assert _cli("scan", tmp_path / "b.txt", "--encoding", "latin-1").returncode == 0
