"""Packs trained with and without their document-context margins (--context-share): a pack
stripped of its margins is the pack the margin-free encoding builds, the share is exact and
deterministic per (seed, epoch), and a run records what each epoch fed."""

import json

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from trustfit.encode.align import IGNORE_INDEX
from trustfit.encode.windows import Specials, build_features, without_margins
from trustfit.train.margins import MarginShare
from tests.test_align_windows import documents

SPECIALS = Specials(prefix=[101], suffix=[102])


@settings(max_examples=150, deadline=None)
@given(documents(), st.integers(92, 160), st.sampled_from([8, 32]))
def test_a_pack_without_margins_is_the_margin_free_encoding(data, max_length, context):
    sentences, labels, docs = data
    framed = build_features(sentences, labels, docs, SPECIALS, max_length, context, stride=context, pack=True,
                            pack_tokens=24)
    bare = build_features(sentences, labels, docs, SPECIALS, max_length, 0, stride=context, pack=True, pack_tokens=24)
    assert len(framed) == len(bare)
    for f, g in zip(framed, bare):
        s = without_margins(f, SPECIALS)
        assert (s.input_ids, s.labels, s.positions, s.words, s.weight) == (
            g.input_ids, g.labels, g.positions, g.words, g.weight)
        assert s.margins == (0, 0) and len(f) - len(s) == sum(f.margins)
        # the labels sit where they sat, on the same sub-tokens
        assert [f.labels[p + f.margins[0]] for p in s.positions] == [s.labels[p] for p in s.positions]
        assert sum(1 for x in s.labels if x != IGNORE_INDEX) == sum(1 for x in f.labels if x != IGNORE_INDEX)


def _packs():
    sentences = [[[1000 + 100 * s + w] for w in range(10)] for s in range(12)]
    labels = [[1] * 10 for _ in sentences]
    return build_features(sentences, labels, [list(range(12))], SPECIALS, 128, 8, pack=True, pack_tokens=20)


def test_the_share_is_exact_and_drawn_afresh_each_epoch():
    feats = _packs()
    framed = sum(1 for f in feats if f.margins != (0, 0))
    assert framed == len(feats) == 6
    half = MarginShare(feats, SPECIALS, 0.5, seed=3)
    e0, e1 = half.features(0), half.features(1)
    kept = [[g is f for f, g in zip(feats, e)] for e in (e0, e1)]
    assert sum(kept[0]) == sum(kept[1]) == 3 and kept[0] != kept[1]
    assert [g.input_ids for g in MarginShare(feats, SPECIALS, 0.5, seed=3).features(1)] == [g.input_ids for g in e1]
    assert [g.weight for g in e0] == [f.weight for f in feats] and [g.words for g in e0] == [f.words for f in feats]
    assert half.stats[0]["sub_tokens"] < half.stats[0]["sub_tokens_all_margins"]
    assert all(g is f for f, g in zip(feats, MarginShare(feats, SPECIALS, 1.0, 0).features(0)))
    assert all(g.margins == (0, 0) for g in MarginShare(feats, SPECIALS, 0.0, 0).features(0))
    late = MarginShare(feats, SPECIALS, 1.0, seed=0, from_epoch=2)  # context late: the last of 3 epochs
    assert [sum(g is f for f, g in zip(feats, late.features(e))) for e in range(3)] == [0, 0, 6]
    assert [late.stats[e]["share"] for e in range(3)] == [0.0, 0.0, 1.0]


def test_a_run_with_a_share_records_each_epoch(tmp_path, tiny_model_dir, conll_slices):
    from tests.test_ner_accuracy_levers import _cli_ok

    train, dev = conll_slices
    out = tmp_path / "m"
    _cli_ok(["train", "--model", tiny_model_dir, "--train", train, "--dev", dev, "--out", out, "--batch-size", "16",
             "--quiet", "--precision", "fp32", "--epochs", "2", "--context-share", "0.25", "--context-from-epoch", "0"])
    share = json.loads((out / "train_summary.json").read_text())["context_share"]
    assert share["share"] == 0.25 and set(share["epochs"]) == {"0", "1"}
    for e in share["epochs"].values():
        n = e["packs_with_margins"] + e["packs_without"]
        assert n > 0 and e["packs_with_margins"] == round(0.25 * n)
        assert e["sub_tokens"] < e["sub_tokens_all_margins"]
    meta = json.loads((out / "trustfit.json").read_text())
    assert meta["config"]["context_share"] == 0.25 and meta["train_has_documents"] is True


def test_a_run_with_context_late_trains_without_margins_first(tmp_path, tiny_model_dir, conll_slices):
    from tests.test_ner_accuracy_levers import _cli_ok

    train, dev = conll_slices
    out = tmp_path / "late"
    _cli_ok(["train", "--model", tiny_model_dir, "--train", train, "--dev", dev, "--out", out, "--batch-size", "16",
             "--quiet", "--precision", "fp32", "--epochs", "2"])  # the default: margins in the last epoch
    epochs = json.loads((out / "train_summary.json").read_text())["context_share"]["epochs"]
    assert epochs["0"]["packs_with_margins"] == 0 and epochs["1"]["packs_without"] == 0
    assert epochs["0"]["sub_tokens"] < epochs["1"]["sub_tokens"] == epochs["1"]["sub_tokens_all_margins"]


def test_with_max_steps_the_last_epoch_is_the_last_the_loop_runs(tmp_path, tiny_model_dir, conll_slices):
    """--max-steps decides how many epochs run (here part of one), so the default's 'last epoch'
    is the last of those, not of --epochs: the margins are fed, and the card says nothing late."""
    from tests.test_ner_accuracy_levers import _cli_ok
    from trustfit.report.card import _margin_schedule

    train, dev = conll_slices
    out = tmp_path / "steps"
    _cli_ok(["train", "--model", tiny_model_dir, "--train", train, "--dev", dev, "--out", out, "--batch-size", "16",
             "--quiet", "--precision", "fp32", "--max-steps", "2"])
    fed = json.loads((out / "train_summary.json").read_text())["context_share"]
    assert fed["from_epoch"] == 0 and set(fed["epochs"]) == {"0"} and fed["epochs"]["0"]["packs_without"] == 0
    hp = {"context_tokens": 32, "epochs": 3, "context_from_epoch": -1, "context_share": 1.0}
    assert _margin_schedule(hp, fed) == "" and _margin_schedule(hp) == " (the margins in the last of its 3 epochs)"


def test_context_from_the_end_counts_back_from_the_last_epoch(tmp_path):
    """-1 is the last epoch whatever --epochs is (one epoch: margins throughout); counting back
    past the first epoch is refused, naming the range."""
    from trustfit.config import TrainConfig
    from trustfit.train.margins import margins_from_epoch, margins_throughout

    def cfg(**kw):
        return TrainConfig(train="t.txt", out=str(tmp_path), **kw)

    assert margins_from_epoch(cfg(epochs=3, context_from_epoch=-1)) == 2
    assert margins_from_epoch(cfg(epochs=5, context_from_epoch=-2)) == 3
    assert margins_from_epoch(cfg(epochs=3, context_from_epoch=1)) == 1
    assert margins_throughout(cfg(epochs=1, context_from_epoch=-1))
    assert not margins_throughout(cfg(epochs=2, context_from_epoch=-1))
    with pytest.raises(ValueError, match=r"context_from_epoch -4 counts back past the first of 3 epochs: use 0 to 2, "
                                         r"or -1 \(the last epoch\) to -3"):
        cfg(epochs=3, context_from_epoch=-4)


def test_a_federated_party_trains_the_share_too(tmp_path, tiny_model_dir, conll_slices, monkeypatch):
    from trustfit.config import TrainConfig
    from trustfit.data.schema import LabelSchema
    from trustfit.federated.local import build_global_model, load_client_task, shared_state, train_round
    from trustfit.tasks.ner import read_ner_corpus

    built = []
    original = MarginShare.build
    monkeypatch.setattr(MarginShare, "build", lambda self, epoch: built.append((self.share, epoch)) or original(self, epoch))
    train, _ = conll_slices
    cfg = TrainConfig(task="ner", train=str(train), out=str(tmp_path), model=str(tiny_model_dir), epochs=1,
                      batch_size=16, precision="fp32", context_share=0.5)
    labels = list(LabelSchema.from_corpus(read_ner_corpus(str(train), cfg)).labels)
    arrays = shared_state(build_global_model(load_client_task(cfg, labels), str(tiny_model_dir), "all", seed=0))
    result = train_round(cfg, labels, arrays, "all", server_round=1, rounds=1)
    assert built == [(0.5, 0)] and result.metrics["steps"] > 0
