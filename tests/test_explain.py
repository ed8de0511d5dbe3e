"""Explanations: one score per word for every method and both tasks (long texts through the
prediction windows), faithfulness against hand-computed values and against the random floor,
IG completeness, LIME reproducibility, gradient x input against plain autograd, the HTML
snippet's escaping, the CLI and the audit's files, and every bad-input message."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from trustfit.cli import app
from trustfit.explain import EXPLAINERS, ExplainError, Target, Text, make_explainer
from trustfit.explain.faithfulness import faithfulness, removal_masks, spearman, top_k_counts, typo, typo_variant
from trustfit.explain.model import ClassifierExplainable, ExplainableModel, NerExplainable, load_explainable
from trustfit.explain.render import attribution_html, html_page

from tests.conftest import synthetic_sentence

runner = CliRunner()
def ok(args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


def fails(args, *needles):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    for n in needles:
        assert n in r.output, r.output
    return r


@pytest.fixture(scope="module")
def ner_view(ner_model):
    return load_explainable(str(ner_model))


@pytest.fixture(scope="module")
def clf_view(keyword_classifier):
    return load_explainable(str(keyword_classifier))


# ---------------------------------------------------------------- one score per word, both tasks
@pytest.mark.parametrize("method", sorted(EXPLAINERS))
def test_classifier_one_score_per_word(clf_view, method):
    t = Text.from_string("the company published a superb report , said the market today")
    target = clf_view.targets(t)[0]
    a = make_explainer(method, clf_view).explain(t, target)
    assert len(a.scores) == len(t.words) == len(a.words) and all(np.isfinite(a.scores))
    assert a.method == method and a.seconds >= 0
    assert json.loads(json.dumps(a.to_json()))["target"]["label"] == target.label


@pytest.mark.parametrize("method", sorted(EXPLAINERS))
def test_one_word_text(clf_view, method):
    """Found by Schemathesis: SHAP's partition tree needs two words; one word is its own Shapley value."""
    t = Text.from_string("1")
    target = clf_view.targets(t)[0]
    a = make_explainer(method, clf_view).explain(t, target)
    assert len(a.scores) == 1 and np.isfinite(a.scores[0])
    if method == "shap":
        assert a.scores[0] == pytest.approx(clf_view.value(t, target) - clf_view.score(t, target, [[False]])[0])


@pytest.mark.parametrize("method", sorted(EXPLAINERS))
def test_ner_long_sentence_every_word_scored(ner_view, data_dir, method):
    """A sentence longer than the tiny model's 128 positions is explained through the windows
    that predict it: every word gets a score, the span words included."""
    from trustfit.data.conll import read_conll

    sents = read_conll(data_dir / "conll2003/valid.txt").sentences
    words = [w for s in sents[:40] for w in s.tokens][:160]
    t = Text.from_words(words)
    assert len(ner_view.rows(t, None, None)) > 1  # really more than one window
    target = ner_view.gold_target(t, 150, 152, "PER")
    a = make_explainer(method, ner_view, samples=400 if method in ("shap", "lime") else None).explain(t, target)
    assert len(a.scores) == 160 and all(np.isfinite(a.scores))
    if method in ("ig", "gxi"):
        assert any(s != 0 for s in a.scores[140:152])


def test_ner_predicted_targets_are_spans(ner_view):
    from tests.conftest import synthetic_ner_sentence

    rng = random.Random(7)
    found = []
    for _ in range(10):
        t = Text.from_words([w for w, _ in synthetic_ner_sentence(rng)])
        for tg in ner_view.targets(t):
            found.append(tg.label)
            assert 0 <= tg.start < tg.end <= len(t) and len(tg.tag_ids) == tg.end - tg.start
            assert ner_view.labels[tg.tag_ids[0]] == f"B-{tg.label}" and 0 < tg.probability <= 1
    assert found.count("PER") >= 8 and found.count("LOC") >= 8, found


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=80), st.integers(12, 40), st.booleans())
def test_window_word_index_covers_every_subtoken(counts, max_length, pack):
    """The sub-token -> word map of every window (context words included) matches the ids."""
    from trustfit.encode.windows import Specials, build_features
    from trustfit.explain.model import _feature_word_index

    pieces = [[100 * w + k for k in range(c)] for w, c in enumerate(counts)]
    feats = build_features([pieces], [None], [[0]], Specials([1], [2]), max_length, 0, 4, pack, 16)
    targets = sorted(w for f in feats for _, w in f.words)
    assert targets == list(range(len(counts)))
    for f in feats:
        index = _feature_word_index(f, pieces, 1, 1)
        assert index[0] == -1 and index[-1] == -1
        for pos, w in enumerate(index):
            if w >= 0:
                assert f.input_ids[pos] // 100 == w


# ---------------------------------------------------------------- faithfulness: hand-computed
class LinearModel(ExplainableModel):
    """A stand-in whose value is sigmoid(sum of kept words' weights): faithfulness by hand."""

    task = "classify"

    def __init__(self, weights):
        self.w = np.asarray(weights, dtype=float)
        self.passes = 0

    def score(self, text, target, keep):
        keep = np.atleast_2d(keep)
        self.passes += len(keep)
        return 1 / (1 + np.exp(-(keep * self.w).sum(1)))


def test_faithfulness_equals_hand_computation():
    w = [3.0, -1.0, 0.5, 0.0, 2.0, -2.0, 0.1, 0.2, 0.3, 0.4]
    m, t = LinearModel(w), Text.from_words([f"w{i}" for i in range(10)])
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    full = sig(sum(w))
    order = np.argsort(-np.asarray(w), kind="stable")  # a perfect explanation: the weights themselves
    comp = np.mean([full - sig(sum(w) - sum(np.asarray(w)[order[:k]])) for k in (1, 2, 3, 4, 5)])
    suff = np.mean([full - sig(sum(np.asarray(w)[order[:k]])) for k in (1, 2, 3, 4, 5)])
    f = faithfulness(m, t, Target("classify", "x", 0), w)
    assert f.comprehensiveness == pytest.approx(comp) and f.sufficiency == pytest.approx(suff)
    worse = faithfulness(m, t, Target("classify", "x", 0), [-x for x in w])
    assert worse.comprehensiveness < f.comprehensiveness and worse.sufficiency > f.sufficiency


@given(st.lists(st.floats(-5, 5), min_size=1, max_size=60))
def test_removal_masks_properties(scores):
    without, only = removal_masks(scores)
    ks = top_k_counts(len(scores))
    assert (without == ~only).all()
    for row, k in zip(only, ks):
        assert row.sum() == k
        assert min(np.asarray(scores)[row]) >= max(np.asarray(scores)[~row], default=-np.inf)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFG", min_size=3, max_size=15), st.integers(0, 1000))
def test_typo_keeps_length_and_changes_word(word, seed):
    new = typo(word, np.random.default_rng(seed))
    assert len(new) == len(word) and new != word


def test_typo_variant_avoids_target_span():
    t = Text.from_string("Peter Blackburn visited Brussels yesterday morning")
    for seed in range(20):
        v, i = typo_variant(t, Target("ner", "PER", start=0, end=2, tag_ids=(1, 2)), np.random.default_rng(seed))
        assert i >= 2 and v.words[:2] == t.words[:2] and len(v.text) == len(t.text)


# ---------------------------------------------------------------- faithfulness on a real model
def test_real_methods_beat_random_on_comprehensiveness(clf_view):
    from trustfit.explain.audit import score_method

    rng = random.Random(1)
    texts = [Text.from_string(synthetic_sentence(rng, lab)) for lab in ("positive", "negative") for _ in range(6)]
    examples = [(t, clf_view.targets(t)[0]) for t in texts]
    comp = {m: np.mean(score_method(clf_view, m, examples, seed=0, samples=None).comprehensiveness)
            for m in EXPLAINERS}
    for m in ("ig", "gxi", "shap", "lime"):
        assert comp[m] > comp["random"] + 0.05, comp


def test_ig_completeness_gap_shrinks_with_steps(clf_view):
    t = Text.from_string("the market read a dreadful report from the company")
    target = clf_view.targets(t)[0]
    gaps = [make_explainer("ig", clf_view, samples=s, method="riemann_trapezoid").explain(t, target)
            .extra["completeness_gap"] for s in (2, 8, 64)]
    assert gaps[2] < gaps[1] < gaps[0] and gaps[2] < gaps[0] / 20, gaps


@pytest.mark.parametrize("baseline", ["none", "pad"])
def test_gxi_matches_plain_autograd(clf_view, baseline):
    """Independent reference: the gradient of the class probability w.r.t. the word embeddings,
    times (embeddings - baseline embeddings), summed per word."""
    import torch

    t = Text.from_string("people read the superb results today")
    target = clf_view.targets(t)[0]
    a = make_explainer("gxi", clf_view, baseline=baseline).explain(t, target)
    b = clf_view.gradient_batch(t, target)
    layer = clf_view.model.get_input_embeddings()
    emb = layer(b["input_ids"]).detach().requires_grad_(True)
    base_ids = b["input_ids"].clone()
    base_ids[0, 1:-1] = clf_view.tokenizer.pad_token_id  # [CLS] and [SEP] kept
    base = layer(base_ids).detach() if baseline == "pad" else torch.zeros_like(emb)
    logits = clf_view.model(inputs_embeds=emb, attention_mask=b["attention_mask"]).logits
    p = (logits / clf_view.temperature).softmax(-1)[0, target.class_index]
    p.backward()
    tok = (emb.grad * (emb - base)).sum(-1)[0]
    ref = [float(tok[b["word_index"][0] == w].sum()) for w in range(len(t))]
    assert a.scores == pytest.approx(ref, rel=1e-4, abs=1e-7)


def test_ig_equals_captum_layer_integrated_gradients(ner_view):
    """Independent reference: Captum's LayerIntegratedGradients on the word-embedding layer."""
    import torch
    from captum.attr import LayerIntegratedGradients

    t = Text.from_string("EU rejects German call to boycott British lamb .")
    target = ner_view.gold_target(t, 2, 3, "LOC")
    a = make_explainer("ig", ner_view, samples=10).explain(t, target)
    b = ner_view.gradient_batch(t, target)
    lig = LayerIntegratedGradients(ner_view.forward_value, ner_view.model.get_input_embeddings())
    with torch.enable_grad():
        attr = lig.attribute(b["input_ids"], baselines=ner_view.baseline_ids(b, "pad"), n_steps=10,
                             additional_forward_args=(b["attention_mask"], b["tmask"], b["tlab"]))
    ref = ner_view.word_scores(attr.sum(-1).detach(), b["word_index"], len(t))
    assert a.scores == pytest.approx(ref, rel=1e-3, abs=1e-6)


def test_lime_same_seed_repeats_other_seed_differs(clf_view):
    t = Text.from_string("the company published a wonderful report today")
    target = clf_view.targets(t)[0]
    a = make_explainer("lime", clf_view, samples=60, seed=3).explain(t, target).scores
    b = make_explainer("lime", clf_view, samples=60, seed=3).explain(t, target).scores
    c = make_explainer("lime", clf_view, samples=60, seed=4).explain(t, target).scores
    assert a == b and a != c
    assert spearman(a, a) == pytest.approx(1.0)


def test_masked_score_keeps_word_positions(ner_view):
    t = Text.from_string("EU rejects German call to boycott British lamb .")
    target = ner_view.gold_target(t, 2, 3, "LOC")
    full = ner_view.value(t, target)
    keep = np.ones((3, len(t)), dtype=bool)
    keep[1, 0] = False
    keep[2, 2] = False
    v = ner_view.score(t, target, keep)
    assert v[0] == pytest.approx(full, abs=1e-5) and v[1] != v[0] and v[2] != v[0]


# ---------------------------------------------------------------- rendering
def test_html_escapes_input_and_is_self_contained(clf_view):
    t = Text.from_string("<script>alert(1)</script> superb <img src=x onerror=alert(1)> results")
    a = make_explainer("gxi", clf_view).explain(t, clf_view.targets(t)[0])
    h = attribution_html(a)
    assert "<script" not in h and "<img" not in h and h.count("&lt;") >= 3 and "onerror" in h
    assert "http" not in h and "src=" not in h.replace("src=x", "")  # no external assets
    assert h.count("<span") >= len(t.words)


@pytest.mark.skipif(not __import__("shutil").which("chromium"), reason="Debian chromium is installed by .ci/run")
def test_html_renders_in_headless_chromium(clf_view, tmp_path):
    from playwright.sync_api import sync_playwright

    t = Text.from_string("Operating profit rose to a superb <b>EUR 3.1 mn</b> & more")
    snippets = [attribution_html(make_explainer(m, clf_view).explain(t, clf_view.targets(t)[0]))
                for m in ("ig", "lime")]
    page_file = tmp_path / "x.html"
    page_file.write_text(html_page(snippets), encoding="utf-8")
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=__import__("shutil").which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        assert page.locator(".trustfit-explanation").count() == 2
        assert "<b>EUR 3.1 mn</b>" in page.locator(".trustfit-explanation").first.inner_text()
        assert page.locator("b").count() == 0  # shown as text, never parsed
        page.screenshot(path=str(tmp_path / "shot.png"))
        browser.close()
    assert not errors, errors
    assert (tmp_path / "shot.png").stat().st_size > 5000


# ---------------------------------------------------------------- CLI and audit
def test_explain_cli_classifier(keyword_classifier, tmp_path):
    r = ok(["explain", "--model", keyword_classifier, "--text", "the superb report was read today",
            "--method", "ig", "--json", tmp_path / "a.jsonl", "--html", tmp_path / "a.html", "--png", tmp_path / "a.png"])
    assert "ig: why class positive" in r.output
    rec = json.loads((tmp_path / "a.jsonl").read_text())
    assert rec["words"][1] == "superb" and max(range(6), key=lambda i: rec["scores"][i]) == 1
    assert "completeness_gap" in rec["extra"] and (tmp_path / "a.png").stat().st_size > 1000
    assert "trustfit-explanation" in (tmp_path / "a.html").read_text()
    r = ok(["explain", "--model", keyword_classifier, "--text", "the superb report", "--target", "negative",
            "--method", "shap", "--quiet", "--json", tmp_path / "b.jsonl"])
    assert json.loads((tmp_path / "b.jsonl").read_text())["target"]["label"] == "negative"


def test_explain_cli_ner_stdin(ner_model, tmp_path):
    r = runner.invoke(app, ["explain", "--model", str(ner_model), "--input", "-", "--method", "gxi",
                            "--json", str(tmp_path / "n.jsonl")],
                      input="EU rejects German call to boycott British lamb .\nPeter Blackburn went to Brussels .\n")
    assert r.exit_code == 0, r.output
    for line in (tmp_path / "n.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert len(rec["scores"]) == len(rec["words"]) and rec["target"]["task"] == "ner"


def test_explain_cli_errors(keyword_classifier, ner_model):
    fails(["explain", "--model", keyword_classifier, "--text", "   "], "the text is empty")
    fails(["explain", "--model", keyword_classifier, "--text", "superb", "--method", "anchors"],
          "unknown explanation method 'anchors'", "ig, gxi, shap, lime, random")
    fails(["explain", "--model", keyword_classifier, "--text", "superb", "--target", "neutral"],
          "no class 'neutral'", "negative, positive")
    fails(["explain", "--model", keyword_classifier, "--text", "a superb report today", "--method", "lime",
           "--samples", "3"], "at least 10 samples")
    fails(["explain", "--model", keyword_classifier, "--text", " ".join(["superb"] * 30), "--method", "shap",
           "--samples", "20"], "cannot give each of 30 words its own score", "at least 62")
    fails(["explain", "--model", keyword_classifier, "--text", "superb", "--entity", "0"], "for a classifier use --target")
    fails(["explain", "--model", ner_model, "--text", "the report by Maria Lopez in Paris", "--entity", "99"],
          "--entity 99 is past the entities found", "0: 'Maria Lopez' PER", "1: 'Paris' LOC")
    fails(["explain", "--model", ner_model, "--text", "EU rejects", "--target", "ORG"], "use --entity N")
    fails(["explain", "--model", keyword_classifier], "give either --text or --input")


def test_audit_explain_writes_the_convention(keyword_classifier, tmp_path):
    rng = random.Random(5)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": synthetic_sentence(rng, l)}) + "\n" for l in ["positive", "negative"] * 4))
    out = tmp_path / "audit"
    ok(["audit", "explain", "--model", keyword_classifier, "--data", data, "--n", "6", "--methods", "gxi,lime,random",
        "--samples", "60", "--out", out, "--quiet"])
    res = json.loads((out / "result.json").read_text())
    assert res["kind"] == "explain" and res["schema_version"] == 1 and res["examples"] == 6
    assert res["data"]["sha256"] and res["model"]["fingerprint"] and res["settings"]["methods"] == ["gxi", "lime", "random"]
    for m in ("gxi", "lime", "random"):
        mj = res["methods"][m]
        assert mj["explained"] == 6 and len(mj["comprehensiveness"]["ci"]) == 2 and mj["ms_per_explanation"]["median"] >= 0
    assert res["methods"]["gxi"]["stability_seed"]["note"] == "deterministic method"
    assert res["methods"]["lime"]["stability_seed"]["n"] == 6
    assert res["headline"] and (out / "faithfulness.png").stat().st_size > 1000
    assert "| gxi |" in (out / "report.md").read_text() and (out / "examples.html").exists()
    # default location: MODEL/audits/explain
    ok(["audit", "explain", "--model", keyword_classifier, "--data", data, "--n", "2", "--methods", "random", "--quiet"])
    assert (keyword_classifier / "audits/explain/result.json").exists()


def test_audit_explain_errors(keyword_classifier, tmp_path):
    fails(["audit", "explain", "--model", keyword_classifier, "--data", tmp_path / "none.jsonl"], "no such file")
    d = tmp_path / "d.jsonl"
    d.write_text('{"text": "superb day"}\n')
    fails(["audit", "explain", "--model", keyword_classifier, "--data", d, "--methods", "ig,foo"], "unknown explanation method 'foo'")
    fails(["audit", "explain", "--model", keyword_classifier, "--data", d, "--n", "0"], "--n must be at least 1")
