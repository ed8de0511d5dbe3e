"""Robustness: perturbation families keep gold labels aligned (property tests over real CoNLL
sentences), adversarial training matches an independent computation through `inputs_embeds`,
keeps the saved format, resumes after kill -9; data augmentation; the attack audit and its
errors."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.conftest import DATA, write_conll
from trustfit.cli import app
from trustfit.data.conll import read_conll
from trustfit.data.schema import Sentence
from trustfit.data.tags import repair_iob2, spans_from_tags
from trustfit.data.text import TextExample
from trustfit.robust.perturb import (FAMILIES, PerturbationError, changed_share, check_families, make_family,
                                     mention_inventory, parse_family)
from trustfit.robust.perturb.base import WORD_RE
from trustfit.robust.perturb.punct import PUNCT_RE
from trustfit.robust.perturb.typo import typo_word

runner = CliRunner()
VALID = read_conll(DATA / "conll2003/valid.txt")
INVENTORY = mention_inventory([read_conll(DATA / "conll2003/train.txt")])
SENTENCES = st.sampled_from(VALID.sentences)
NER_FAMILIES = ["typo", "case", "punct", "entity-swap", "entity-novel", "typo:max_words=5:ops=insert+delete",
                "case:mode=title"]


def family(spec: str):
    name, opts = parse_family(spec)
    return make_family(name, opts, {"inventory": INVENTORY, "inventory_source": "train"})


def invoke(args):
    return runner.invoke(app, [str(a) for a in args])


# -- perturbations: labels aligned by construction ----------------------------------------------

@settings(max_examples=150, deadline=None)
@given(s=SENTENCES, spec=st.sampled_from(NER_FAMILIES), seed=st.integers(0, 2**32 - 1))
def test_ner_perturbations_keep_tags_aligned(s, spec, seed):
    before = (list(s.tokens), list(s.tags))
    out = family(spec).apply(s, np.random.default_rng(seed))
    assert (s.tokens, s.tags) == before  # the input is never mutated
    assert len(out.tokens) == len(out.tags) and all(out.tokens)
    assert repair_iob2(out.tags) == out.tags  # valid IOB2
    assert [sp.label for sp in spans_from_tags(out.tags)] == [sp.label for sp in spans_from_tags(s.tags)]
    again = family(spec).apply(s, np.random.default_rng(seed))
    assert (again.tokens, again.tags) == (out.tokens, out.tags)  # seeded: reproducible
    name = spec.split(":")[0]
    if name in ("typo", "case"):  # the same words in place, same tags
        assert out.tags == s.tags and len(out.tokens) == len(s.tokens)
    if name == "typo":
        changed = [i for i, (a, b) in enumerate(zip(s.tokens, out.tokens)) if a != b]
        limit = int(spec.split("max_words=")[1].split(":")[0]) if "max_words" in spec else 2
        assert len(changed) <= limit and all(s.tokens[i][0] == out.tokens[i][0] for i in changed)
    if name == "punct":  # every word kept, in order, with its tag; only O-tagged punctuation moves
        words = [(w, t) for w, t in zip(s.tokens, s.tags) if not PUNCT_RE.match(w)]
        assert [(w, t) for w, t in zip(out.tokens, out.tags) if not PUNCT_RE.match(w)] == words
    if name.startswith("entity"):  # outside the entities nothing changed
        keep = lambda x: [(w, t) for w, t in zip(x.tokens, x.tags) if t == "O"]  # noqa: E731
        assert keep(out) == keep(s)
        if name == "entity-novel":
            new = [tuple(out.tokens[sp.start:sp.end]) for sp in spans_from_tags(out.tags)]
            inventory = {m for ms in INVENTORY.values() for m in ms}
            assert not any(m in inventory for m in new)


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.sampled_from("abcdefghij KLMN,.!'-"), min_size=1, max_size=60),
       spec=st.sampled_from(["typo", "case", "punct"]), seed=st.integers(0, 1000))
def test_text_perturbations_keep_words(text, spec, seed):
    e = TextExample(text, "pos")
    out = family(spec).apply(e, np.random.default_rng(seed))
    assert out.label == "pos" and e.text == text
    if spec == "punct":  # the same letters of the same words: only punctuation and spaces moved
        assert "".join(WORD_RE.findall(out.text)) == "".join(WORD_RE.findall(text))
    if spec == "case":
        assert out.text.lower() == " ".join(w.lower() for w in text.split(" ")) or out.text.lower() == text.lower()


def test_typo_word_operations():
    rng = np.random.default_rng(0)
    assert typo_word("ab", rng, ["swap"]) == "ab"  # nothing to swap inside two letters
    assert len(typo_word("house", rng, ["insert"])) == 6 and len(typo_word("house", rng, ["delete"])) == 4
    sub = typo_word("house", rng, ["substitute"])
    assert len(sub) == 5 and sub[0] == "h" and sum(a != b for a, b in zip(sub, "house")) == 1
    assert typo_word("HOUSE", rng, ["substitute"]).isupper()


def test_changed_share_counts_words():
    a = Sentence(["the", "cat", "sat", "down"], ["O"] * 4)
    assert changed_share(a, a) == 0
    assert changed_share(a, Sentence(["the", "cta", "sat", "down"], ["O"] * 4)) == 0.25
    assert changed_share(a, Sentence(["the", ",", "cat", "sat", "down"], ["O"] * 5)) == 0.25


def test_family_errors_name_the_fix():
    with pytest.raises(PerturbationError, match="unknown perturbation family 'tyop'; known: typo, case"):
        parse_family("tyop")
    with pytest.raises(PerturbationError, match="word-sub applies to classify models only"):
        check_families(["word-sub"], "ner")
    with pytest.raises(PerturbationError, match="entity-swap applies to ner models only"):
        check_families(["entity-swap"], "classify")
    with pytest.raises(PerturbationError, match="model-guided attack and cannot augment"):
        check_families(["word-sub"], "classify", purpose="augment")
    with pytest.raises(PerturbationError, match="must be key=value"):
        parse_family("typo:3")
    with pytest.raises(PerturbationError, match="typo: bad option"):
        make_family("typo", {"max_word": 3})
    with pytest.raises(PerturbationError, match="inventory is empty"):
        make_family("entity-swap", {}, {"inventory": {}})
    with pytest.raises(PerturbationError, match="word-sub attacks a classifier"):
        make_family("word-sub", {})
    assert set(FAMILIES) >= {"typo", "case", "punct", "entity-swap", "entity-novel", "word-sub"}


# -- adversarial training -----------------------------------------------------------------------

def _tiny_ner(tiny_model_dir):
    from trustfit.data.schema import LabelSchema
    from trustfit.models.backbone import load_token_classifier

    import torch

    torch.manual_seed(0)
    model = load_token_classifier(str(tiny_model_dir), LabelSchema.from_types(["PER"]))
    model.eval()  # no dropout: the reference computation must see the same network
    return model


class _FakeTrainer:
    """The part of Trainer the adversary uses, without accelerate."""

    def __init__(self, model):
        from types import SimpleNamespace

        self.model = self.unwrapped_model = model
        self.state = SimpleNamespace(epoch=0)
        self.accelerator = SimpleNamespace(backward=lambda loss: loss.backward(), autocast=_null)

    def compute_loss(self, batch, model=None):
        return (model or self.model)(**batch).loss


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb"])
def test_adversary_matches_inputs_embeds_reference(tiny_model_dir, method):
    """The plugin's gradients equal clean + adversarial gradients computed independently by
    feeding word embeddings + delta through HF's `inputs_embeds`."""
    import torch

    from trustfit.robust.adversarial import EmbeddingAdversary, _normalise, _project

    eps, alpha, k = 0.5, 0.2, 3
    batch = {"input_ids": torch.tensor([[101, 7592, 2088, 102, 0], [101, 2023, 2003, 1037, 102]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]),
             "labels": torch.tensor([[-100, 1, 2, -100, -100], [-100, 0, 0, 1, -100]])}
    model = _tiny_ner(tiny_model_dir)
    adv = EmbeddingAdversary(method, epsilon=eps, alpha=alpha, steps=k)
    trainer = _FakeTrainer(model)
    adv.on_train_start(trainer)
    loss = model(**batch).loss
    loss.backward()
    adv.on_backward(trainer, batch, loss)
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    adv.on_train_end(trainer)

    ref = _tiny_ner(tiny_model_dir)
    emb = ref.get_input_embeddings()
    rest = {k2: v for k2, v in batch.items() if k2 != "input_ids"}

    def loss_at(delta):
        return ref(inputs_embeds=emb(batch["input_ids"]) + delta, **rest).loss

    x = emb(batch["input_ids"])
    x.retain_grad()
    clean = ref(inputs_embeds=x, **rest).loss
    clean.backward()
    g = x.grad.detach()
    if method == "fgm":
        delta = eps * _normalise(g)
        loss_at(delta).backward()
    else:
        delta = _project(alpha * _normalise(g), eps)
        for step in range(k if method == "freelb" else k - 1):
            d = delta.clone().requires_grad_(True)
            if method == "freelb":
                (loss_at(d) / k).backward()
                gd = d.grad
            else:
                (gd,) = torch.autograd.grad(loss_at(d), d)
            if method == "pgd" or step < k - 1:
                delta = _project(delta + alpha * _normalise(gd), eps)
            assert float(delta.flatten(1).norm(dim=1).max()) <= eps + 1e-5  # stays in the ball
        if method == "pgd":
            loss_at(delta).backward()
    for n, p in ref.named_parameters():
        assert torch.allclose(got[n], p.grad, atol=1e-5, rtol=1e-4), n
    assert adv.counts["steps_attacked"] == 1
    assert adv.counts["extra_forward"] == (1 if method == "fgm" else k)


def train_args(tiny_model_dir, train, dev, out, *extra):
    return ["train", "--model", str(tiny_model_dir), "--train", str(train), "--dev", str(dev), "--out", str(out),
            "--batch-size", "16", "--lr", "5e-4", "--quiet", "--precision", "fp32", "--layer-lr-decay", "1", *extra]


def _weights(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_adversarial_training_changes_weights_not_format(tmp_path, tiny_model_dir, conll_slices):
    for name, extra in (("plain", []), ("pgd", ["--adversarial", "pgd", "--adv-steps", "2"]),
                        ("fgm", ["--adversarial", "fgm", "--augment", "typo,entity-swap", "--augment-rate", "0.5"])):
        r = invoke(train_args(tiny_model_dir, *conll_slices, tmp_path / name, "--max-steps", "4", *extra))
        assert r.exit_code == 0, r.output
    plain, pgd, fgm = (_weights(tmp_path / n) for n in ("plain", "pgd", "fgm"))
    assert set(plain) == set(pgd) == set(fgm)  # a plain HF model: no perturbation state saved
    assert all(plain[k].shape == pgd[k].shape and plain[k].dtype == pgd[k].dtype for k in plain)
    assert any(not (plain[k] == pgd[k]).all() for k in plain)  # the loss path did change
    assert sorted(os.listdir(tmp_path / "plain")) == sorted(os.listdir(tmp_path / "pgd"))
    s = json.loads((tmp_path / "pgd/train_summary.json").read_text())["adversarial"]
    assert s["method"] == "pgd" and s["steps_attacked"] == 4
    assert s["extra_forward_per_step"] == 2 and s["extra_backward_delta_only_per_step"] == 1
    assert s["seconds_per_step"] > s["adversarial_seconds_per_step"] > 0
    aug = json.loads((tmp_path / "fgm/train_summary.json").read_text())["augmentation"]
    n = sum(1 for s in read_conll(conll_slices[0]).sentences)
    assert aug["rate"] == 0.5 and 0 < aug["epochs"]["0"]["copies"] + aug["epochs"]["0"]["unchanged_skipped"] == round(0.5 * n)


def test_adversarial_bf16_runs(tmp_path, tiny_model_dir, conll_slices):
    r = invoke(train_args(tiny_model_dir, *conll_slices, tmp_path / "m", "--max-steps", "2", "--adversarial", "freelb",
                          "--adv-steps", "2", "--precision", "bf16"))
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "m/train_summary.json").read_text())
    assert s["precision"] == "bf16" and s["adversarial"]["steps_attacked"] == 2


@pytest.mark.parametrize("flag,value,message", [
    ("--adv-epsilon", "0", "adv_epsilon: Input should be greater than 0"),
    ("--adv-steps", "0", "adv_steps: Input should be greater than or equal to 1"),
    ("--adversarial", "fgsm", "adversarial: Input should be 'none', 'fgm', 'pgd' or 'freelb'"),
    ("--augment", "typo,tpyo", "augment: unknown perturbation family 'tpyo'; known: typo, case"),
    ("--augment", "word-sub", "word-sub applies to classify models only"),
])
def test_adversarial_option_errors(tmp_path, tiny_model_dir, conll_slices, flag, value, message):
    r = invoke(train_args(tiny_model_dir, *conll_slices, tmp_path / "m", flag, value))
    assert r.exit_code == 2 and message in r.output, r.output


def test_adv_module_unknown_lists_embeddings(tmp_path, tiny_model_dir, conll_slices):
    r = invoke(train_args(tiny_model_dir, *conll_slices, tmp_path / "m", "--max-steps", "1", "--adversarial", "fgm",
                          "--adv-module", "bert.nope"))
    assert r.exit_code == 2 and "adv_module 'bert.nope' is not a module" in r.output
    assert "bert.embeddings.word_embeddings" in r.output


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "trustfit", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_pgd_resume_after_sigkill_matches_uninterrupted(tmp_path, tiny_model_dir, conll_slices):
    args = lambda out: train_args(tiny_model_dir, *conll_slices, out, "--epochs", "2", "--checkpoint-every", "3",  # noqa: E731
                                  "--adversarial", "pgd", "--adv-steps", "2", "--augment", "typo,case")
    clean = _cli(*args(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    s_clean = json.loads((tmp_path / "clean/train_summary.json").read_text())
    kill_at = s_clean["steps"] // 2 + 2  # in the second epoch: its augmented copies must be rebuilt alike
    killed = _cli(*args(tmp_path / "k"), env={"TRUSTFIT_FAULT_KILL_AT_STEP": str(kill_at)})
    assert killed.returncode == -9
    resumed = _cli(*args(tmp_path / "k"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    wa, wb = _weights(tmp_path / "clean"), _weights(tmp_path / "k")
    assert all((wa[k] == wb[k]).all() for k in wa)
    s_res = json.loads((tmp_path / "k/train_summary.json").read_text())
    assert s_res["resumed"] and s_res["steps"] == s_clean["steps"]
    assert s_res["adversarial"]["steps_attacked"] == s_clean["adversarial"]["steps_attacked"]
    copies = lambda s: {e: (v["copies"], v["per_family"]) for e, v in s["augmentation"]["epochs"].items()}  # noqa: E731
    assert copies(s_res) == copies(s_clean) and len(copies(s_clean)) == 2
    assert "lowercases its input" in s_res["augmentation"]["notes"][0]  # case copies are no-ops for this model


@pytest.mark.distributed
def test_two_process_adversarial_training_stays_in_sync(tmp_path, tiny_model_dir, conll_slices):
    common = train_args(tiny_model_dir, *conll_slices, tmp_path / "multi", "--max-steps", "6", "--adversarial", "freelb",
                        "--adv-steps", "2", "--augment", "typo,entity-swap")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "trustfit"]
    r = subprocess.run([*launcher, *common], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "multi/train_summary.json").read_text())
    assert s["processes"] == 2 and s["ranks_in_sync"], s["param_checksum_by_rank"]
    assert s["adversarial"]["steps_attacked"] == 6


# -- the audit ----------------------------------------------------------------------------------

def test_ner_audit_files_and_numbers(ner_model, tmp_path):
    rng = random.Random(5)
    from tests.conftest import synthetic_ner_sentence

    sents = [synthetic_ner_sentence(rng) for _ in range(30)] + [[("1996", "O"), ("-", "O")]] * 3
    data = write_conll(tmp_path / "d.txt", sents)
    out = tmp_path / "audit"
    r = invoke(["audit", "robustness", "--model", ner_model, "--data", data, "--out", out, "--write-examples",
                "--families", "typo,case,punct,entity-swap,entity-novel", "--inventory", data, "--resamples", "200",
                "--quiet"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "result.json").read_text())
    assert res["kind"] == "robustness" and res["task"] == "ner" and res["examples"] == 33
    assert (out / "report.md").exists() and (out / "robustness.png").stat().st_size > 1000
    assert {h["name"] for h in res["headline"]} >= {"clean entity F1", "entity F1 under typo"}
    assert "lowercases its input" in res["families"]["case"]["note"]
    assert res["families"]["case"]["perturbed"]["drop"] == 0  # an uncased model cannot see case
    sw = res["families"]["entity-swap"]
    assert sw["unchanged_examples"] == 3 and sw["changed_examples"] == 30  # no entity: counted, not dropped
    assert "mentions_per_type" in sw["constraints"] and sw["queries_per_example"] == 1
    # the perturbed examples were written: gold tags in column 2 agree with the family's own output
    written = read_conll(out / "examples/entity-swap.conll", tag_column=1)
    assert len(written) == 33
    pred = read_conll(out / "examples/entity-swap.conll", tag_column=2)
    # the audit's F1 recomputes from the written file
    from trustfit.robust.audit import _f1, entity_counts

    f1 = float(_f1(entity_counts([s.tags for s in written], [s.tags for s in pred])))
    assert abs(f1 - sw["perturbed"]["value"]) < 1e-9
    lo, hi = sw["perturbed"]["ci"]
    assert lo <= sw["perturbed"]["value"] <= hi
    again = invoke(["audit", "robustness", "--model", ner_model, "--data", data, "--out", tmp_path / "again",
                    "--families", "entity-swap", "--inventory", data, "--resamples", "200", "--quiet"])
    assert again.exit_code == 0
    assert json.loads((tmp_path / "again/result.json").read_text())["families"]["entity-swap"]["perturbed"] == sw["perturbed"]


def test_audit_errors(ner_model, keyword_classifier, tmp_path):
    data = write_conll(tmp_path / "o.txt", [[("hello", "O"), ("world", "O")]] * 3)
    r = invoke(["audit", "robustness", "--model", ner_model, "--data", data, "--families", "entity-swap", "-q"])
    assert r.exit_code == 2 and "has no entities; entity-swap and entity-novel need gold entity tags" in r.output
    r = invoke(["audit", "robustness", "--model", ner_model, "--data", data, "--families", "word-sub", "-q"])
    assert r.exit_code == 2 and "word-sub applies to classify models only, not ner" in r.output
    r = invoke(["audit", "robustness", "--model", ner_model, "--data", data, "--families", "typo,bogus", "-q"])
    assert r.exit_code == 2 and "unknown perturbation family 'bogus'; known: typo, case, punct" in r.output
    r = invoke(["audit", "robustness", "--model", keyword_classifier, "--data",
                keyword_classifier.parent / "dev.jsonl", "--families", "entity-swap", "-q"])
    assert r.exit_code == 2 and "entity-swap applies to ner models only" in r.output


def test_word_sub_attack_within_constraints(keyword_classifier, tmp_path):
    out = tmp_path / "audit"
    r = invoke(["audit", "robustness", "--model", keyword_classifier, "--data", keyword_classifier.parent / "dev.jsonl",
                "--families", "word-sub:budget=40:max_share=0.2,typo", "--out", out, "--write-examples",
                "--limit", "30", "--resamples", "200", "-q"])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "result.json").read_text())
    ws = res["families"]["word-sub:budget=40:max_share=0.2"]
    assert ws["constraints"]["query_budget_per_example"] == 40 and ws["constraints"]["cosine_threshold"] == 0.5
    assert 1 < ws["queries_per_example"] <= 40
    rows = [json.loads(x) for x in (out / "examples/word-sub_budget_40_max_share_0_2.jsonl").read_text().splitlines()]
    from trustfit.predict.classify import ClassifierPredictor
    from trustfit.data.text import TextCorpus

    pred = ClassifierPredictor.from_dir(str(keyword_classifier)).predict(
        TextCorpus([TextExample(x["perturbed"]) for x in rows]))
    for i, x in enumerate(rows):
        assert pred.top_k(i, 1)[0][0] == x["perturbed_prediction"]  # recorded predictions are the model's
        if x["changed"]:
            a, b = x["original"].split(), x["perturbed"].split()
            assert len(a) == len(b) and sum(p != q for p, q in zip(a, b)) <= max(1, int(0.2 * len(a)))
    flipped = [x for x in rows if x["clean_prediction"] == x["gold"] and x["perturbed_prediction"] != x["gold"]]
    assert abs(len(flipped) / ws["attacked_examples"] - ws["attack_success_rate"]) < 1e-9
