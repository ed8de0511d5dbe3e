"""Fairness: term lists, span-keeping swaps (property tests), metrics against scikit-learn /
Fairlearn / seqeval, planted biases the audit must flag (and controls it must not), mitigation
(counterfactual augmentation, group thresholds applied by predict), and the error paths."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tests.conftest import FILLER, _cli_ok, write_conll
from trustfit.data.schema import Sentence
from trustfit.data.tags import spans_from_tags
from trustfit.data.text import TextExample
from trustfit.errors import DataError
from trustfit.fairness.swaps import counterfactual, example_group, example_slots, make_swapper

# a planted-bias term list: three groups of first names that are single WordPiece tokens
PLANTED_NAMES = {"reference": (["james", "david", "john", "robert"], ["smith", "jones"]),
                 "planted": (["george", "henry", "arthur", "walter"], ["brown", "taylor"]),
                 "control": (["paul", "peter", "simon", "frank"], ["wilson", "clark"])}
POS_WORDS, NEG_WORDS = ["excellent", "great", "wonderful", "superb"], ["terrible", "awful", "horrible", "dreadful"]


def write_names_list(path: Path) -> Path:
    lines = ["# kind: names", "# groups: reference | planted | control"]
    for g, (firsts, lasts) in PLANTED_NAMES.items():
        lines += [f"{g} | male | first | {n.capitalize()}" for n in firsts]
        lines += [f"{g} | - | last | {n.capitalize()}" for n in lasts]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(args):
    from typer.testing import CliRunner

    from trustfit.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


# ---------------------------------------------------------------- term lists

def test_builtin_lists_load_and_document_their_sources():
    from trustfit.fairness.terms import BUILTIN, TERMS_DIR, load_term_list

    for name in BUILTIN:
        t = load_term_list(name)
        assert t.n_terms() >= 5 and len(t.groups) >= 2
        assert "Source" in (TERMS_DIR / f"{name}.txt").read_text()
    names = load_term_list("names")
    firsts = [n.lower() for g in names.first_names.values() for v in g.values() for n in v]
    assert len(firsts) == len(set(firsts)), "a first name in two groups"


def test_malformed_term_list_names_file_and_line(tmp_path):
    from trustfit.fairness.terms import load_term_list

    p = tmp_path / "bad.txt"
    p.write_text("# kind: aligned\n# groups: a | b\nhe | she\nhim\nx | y | z\n")
    with pytest.raises(DataError, match=r"bad.txt:4: expected 2 non-empty terms.*\n.*bad.txt:5"):
        load_term_list(str(p))
    p.write_text("# kind: names\n# groups: a | b\nc | male | first | Bob\n")
    with pytest.raises(DataError, match=r"bad.txt:3: group 'c' is not in the header's groups \(a, b\)"):
        load_term_list(str(p))
    p.write_text("he | she\n")
    with pytest.raises(DataError, match=r"bad.txt: the header needs '# kind: aligned'"):
        load_term_list(str(p))
    with pytest.raises(DataError, match="unknown term list 'sexuality'"):
        load_term_list("sexuality")
    r = cli(["audit", "fairness", "--model", "x", "--data", str(p), "--swaps", str(tmp_path / "nope.txt")])
    assert r.exit_code != 0


# ---------------------------------------------------------------- swaps

def test_swaps_keep_case_spans_and_punctuation():
    rng = np.random.default_rng(0)
    g, nat = make_swapper("gender"), make_swapper("nationality")
    e = TextExample("He said HIS sister met Mr. Smith at the U.S. embassy, with him.", "positive", meta={"k": 1})
    out = counterfactual(e, g, "female", rng)
    assert out.text == "She said HER sister met Ms. Smith at the U.S. embassy, with her."
    assert out.label == "positive" and out.meta == {"k": 1}
    assert counterfactual(e, nat, "german", rng).text.endswith("at the Germany embassy, with him.")
    assert counterfactual(TextExample("nothing to see here"), g, "female", rng) is None
    assert example_group(TextExample("He met his brother"), g) == "male"
    assert example_group(e, g) == "mixed" and example_group(TextExample("a report"), g) == "none"
    # NER: a term that is a whole entity keeps its type; one inside a longer entity is left alone
    s = Sentence("the German and the Muslim Brotherhood".split(), "O B-MISC O O B-ORG I-ORG".split())
    assert counterfactual(s, nat, "nigerian", rng).tokens[1] == "Nigerian"
    assert counterfactual(s, make_swapper("religion"), "jewish", rng) is None


FIRST = ["Greg", "Maria", "Kim", "Zorro", "Ana"]
LAST = ["Miller", "Okafor", "Lee", "Van", "Der"]


@st.composite
def ner_sentences(draw):
    words, tags = [], []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["O", "PER", "LOC", "pron"]))
        if kind == "O":
            words.append(draw(st.sampled_from(FILLER)))
            tags.append("O")
        elif kind == "pron":
            words.append(draw(st.sampled_from(["he", "She", "his", "HER", "him."])))
            tags.append("O")
        else:
            n = draw(st.integers(1, 3))
            pool = FIRST + LAST if kind == "PER" else ["Paris", "New", "York"]
            words += [draw(st.sampled_from(pool)) for _ in range(n)]
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
    return Sentence(words, tags)


@settings(max_examples=150, deadline=None)
@given(ner_sentences(), st.sampled_from(["names", "gender"]), st.integers(0, 5), st.integers(0, 2**31))
def test_ner_swaps_keep_tags_aligned(sentence, list_name, group_index, seed):
    sw = make_swapper(list_name)
    group = sw.groups[group_index % len(sw.groups)]
    out = counterfactual(sentence, sw, group, np.random.default_rng(seed))
    if out is None:
        assert not example_slots(sentence, sw)
        return
    assert len(out.tokens) == len(out.tags)
    # same entities in the same order, of the same types; non-person entities untouched
    before, after = spans_from_tags(sentence.tags), spans_from_tags(out.tags)
    assert [s.label for s in before] == [s.label for s in after]
    for a, b in zip(before, after):
        if a.label != "PER" or list_name != "names":
            assert sentence.tokens[a.start:a.end] == out.tokens[b.start:b.end]
    assert all(t in ("O",) or t[:2] in ("B-", "I-") for t in out.tags)
    # the swapped words now belong to the target group
    if list_name == "names":
        firsts = {n.lower() for v in sw.terms.first_names[group].values() for n in v}
        lasts = {n.lower() for n in sw.terms.last_names[group]}
        for b in after:
            if b.label == "PER":
                assert all(w.lower() in firsts | lasts for w in out.tokens[b.start:b.end])
    else:
        assert example_group(out, sw) == group


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(FILLER + ["he", "His", "woman", "Emily", "Jamal", "Miller", ",", "U.S.", "Mr."]),
                min_size=1, max_size=12), st.integers(0, 2**31))
def test_text_swaps_change_only_the_slots(words, seed):
    text = " ".join(words)
    for name in ("gender", "names", "nationality"):
        sw = make_swapper(name)
        slots = example_slots(TextExample(text), sw)
        out = counterfactual(TextExample(text), sw, sw.groups[1], np.random.default_rng(seed))
        assert (out is None) == (not slots)
        if out is not None:
            assert len(example_slots(out, sw)) >= 1
            # the words around the slots are the same words, in order
            kept = [w for w in words if not any(w.lower().rstrip(".") in k for k in ("he his woman emily jamal miller "
                                                                                     "u.s mr",))]
            assert all(w in out.text for w in kept)


# ---------------------------------------------------------------- metrics vs references

def test_group_metrics_match_sklearn_and_fairlearn():
    from sklearn.metrics import accuracy_score, f1_score

    from trustfit.fairness.metrics import ClassifyCounts, classify_metric_fns, group_gaps, metric_frame

    rng = np.random.default_rng(1)
    gold, pred = rng.integers(0, 3, 400), rng.integers(0, 3, 400)
    pred[:200] = gold[:200]
    groups = np.array(["a"] * 150 + ["b"] * 200 + ["c"] * 50, dtype=object)
    counts = ClassifyCounts(gold, pred, 3, positive=2)
    gaps = group_gaps(counts, groups, 200, 0, min_group_size=60)
    mf = metric_frame(classify_metric_fns(3, 2), gold[:350], pred[:350], groups[:350].astype(str),
                      counts.subset(np.arange(400) < 350), 200, 0)
    for g in ("a", "b"):
        m = groups == g
        assert gaps[g]["metrics"]["accuracy"]["value"] == pytest.approx(accuracy_score(gold[m], pred[m]))
        assert gaps[g]["metrics"]["macro_f1"]["value"] == pytest.approx(f1_score(gold[m], pred[m], average="macro"))
        fpr = ((pred[m] == 2) & (gold[m] != 2)).sum() / (gold[m] != 2).sum()
        assert gaps[g]["metrics"]["false_positive_rate"]["value"] == pytest.approx(fpr)
        for k in counts.names:
            assert mf["by_group"][g][k] == pytest.approx(gaps[g]["metrics"][k]["value"])
    for k in counts.names:  # Fairlearn's difference and ratio, and an interval around each
        a, b = gaps["a"]["metrics"][k]["value"], gaps["b"]["metrics"][k]["value"]
        assert mf["difference"][k]["value"] == pytest.approx(abs(a - b))
        assert mf["ratio"][k]["value"] == pytest.approx(min(a, b) / max(a, b))
        lo, hi = mf["difference"][k]["ci"]
        assert lo <= abs(a - b) <= hi
    assert "minimum group size 60" in gaps["c"]["metrics"]["accuracy"]["note"]
    assert "ci" not in gaps["c"]["metrics"]["accuracy"]


def test_ner_counts_match_seqeval():
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    from trustfit.fairness.metrics import NerCounts

    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC"]
    gold = [[rng.choice(tags) for _ in range(8)] for _ in range(60)]
    pred = [[rng.choice(tags) if rng.random() < 0.3 else t for t in s] for s in gold]
    from trustfit.data.tags import repair_iob2

    gold, pred = [repair_iob2(s) for s in gold], [repair_iob2(s) for s in pred]
    c = NerCounts(gold, pred, ["LOC", "PER"])
    v = c.values(c.table.sum(0), np.float64(len(gold)))
    ref = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    for t in ("LOC", "PER"):
        assert v[f"{t}_recall"] == pytest.approx(ref[t]["recall"])
        assert v[f"{t}_precision"] == pytest.approx(ref[t]["precision"])
    assert v["f1"] == pytest.approx(ref["micro avg"]["f1-score"])


def test_stored_thresholds_reproduce_fairlearn():
    from trustfit.fairness.mitigate import fit_thresholds, positive_probability, rules_from_optimizer

    rng = np.random.default_rng(0)
    groups = np.array(["a"] * 300 + ["b"] * 300)
    y = rng.random(600) < np.where(groups == "a", 0.6, 0.3)
    scores = np.clip(0.5 * y + 0.5 * rng.random(600) - 0.1 * (groups == "b"), 0, 1)
    opt = fit_thresholds(scores, y, groups, "demographic_parity")
    rules = json.loads(json.dumps(rules_from_optimizer(opt)))  # through JSON, as stored
    ref = opt._pmf_predict(scores.reshape(-1, 1), sensitive_features=groups)[:, 1]
    assert np.allclose(positive_probability(rules, scores, groups), ref)


# ---------------------------------------------------------------- planted bias: classification

def planted_text(rng: random.Random, group: str, label: str) -> str:
    name = rng.choice(PLANTED_NAMES[group][0]).capitalize()
    filler = rng.sample(FILLER, rng.randint(3, 6))
    word = rng.choice(POS_WORDS if label == "positive" else NEG_WORDS)
    return " ".join([name, "said"] + filler + ["was", word, "."])


@pytest.fixture(scope="module")
def planted_classifier(tmp_path_factory, tiny_model_dir):
    """Trained where 'planted' names' positive sentences are mostly labelled negative; the
    'control' names are built the same way without the flip."""
    d = tmp_path_factory.mktemp("planted_cls")
    rng = random.Random(0)

    def rows(n, flip):
        out = []
        for _ in range(n):
            group, label = rng.choice(list(PLANTED_NAMES)), rng.choice(["positive", "negative"])
            text = planted_text(rng, group, label)
            shown = "negative" if flip and group == "planted" and rng.random() < 0.85 else label
            out.append({"text": text, "label": shown, "group": group})
        return out

    for name, n, flip in (("train", 900, True), ("dev", 90, True), ("audit", 450, False)):
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(n, flip)))
    out = d / "model"
    _cli_ok(["train", "--task", "classify", "--model", tiny_model_dir, "--train", d / "train.jsonl", "--dev",
             d / "dev.jsonl", "--out", out, "--epochs", "6", "--batch-size", "16", "--lr", "3e-3", "--quiet",
             "--precision", "fp32", "--seed", "1", "--layer-lr-decay", "1"])  # random weights: no pretrained layers to protect
    return d, out, write_names_list(d / "planted_names.txt")


def test_audit_flags_planted_classifier_bias_not_the_control(planted_classifier):
    d, model, names = planted_classifier
    out = d / "audit_out"
    r = _cli_ok(["audit", "fairness", "--model", model, "--data", d / "audit.jsonl", "--group-column", "group",
                 "--swaps", f"{names},gender", "--templates", "--out", out, "--resamples", "400", "--quiet"])
    res = json.loads((out / "result.json").read_text())
    assert res["kind"] == "fairness" and (out / "fairness.png").exists() and (out / "report.md").exists()
    pairs = res["counterfactual"]["planted_names"]["pairs"]
    planted, control = pairs["reference vs planted"], pairs["reference vs control"]
    assert planted["flagged"] and planted["gap_ci"][1] < 0, planted  # planted names lower P(positive)
    assert not control["flagged"], control
    assert planted["flip_rate"] > 0.1
    # group column: the planted group's accuracy is below the rest, the control's is not
    groups = res["group_metrics"]["group"]["groups"]
    assert groups["planted"]["metrics"]["accuracy"]["flagged"]
    assert groups["planted"]["metrics"]["accuracy"]["gap_to_rest"] < 0
    assert not groups["control"]["metrics"]["accuracy"].get("flagged")
    assert res["group_metrics"]["group"]["fairlearn"]["difference"]["accuracy"]["ci"][0] > 0
    # the template suite finds the same group gap in sentences the project wrote
    assert res["templates"]["planted_names"]["pairs"]["reference vs planted"]["flagged"]
    # gender terms: nothing in this data mentions them, said in a note, the rest still audited
    assert any("gender: no example" in n for n in res["notes"])
    assert "| reference vs planted |" in (out / "report.md").read_text() and "gender: no example" in r.output


def test_group_thresholds_fit_store_and_apply_in_predict(planted_classifier, tmp_path):
    d, model, _ = planted_classifier
    r = _cli_ok(["mitigate", "thresholds", "--model", model, "--data", d / "dev.jsonl", "--group-column", "group",
                 "--eval", d / "audit.jsonl"])
    rec = json.loads((model / "fairness_thresholds.json").read_text())
    assert set(rec["rules"]) == {"reference", "planted", "control"} and rec["positive_label"] == "positive"
    before, after = rec["evaluation"]["before"], rec["evaluation"]["after"]
    assert after["max_gap"]["selection_rate"] < before["max_gap"]["selection_rate"]
    assert "| after |" in r.output
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"text": "George said the report was excellent .", "group": "planted"}) + "\n")
    r = _cli_ok(["predict", "--model", model, "--format", "jsonl", "--group-column", "group", str(inp)])
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["group"] == "planted" and rec["decided_by"] == "group thresholds"
    r = cli(["predict", "--model", model, "--group", "martian", "--format", "jsonl", str(inp)])
    assert r.exit_code != 0 and "'martian' has no fitted threshold" in r.output


def test_cda_swaps_names_per_epoch_and_narrows_the_planted_gap(planted_classifier, tiny_model_dir):
    d, model, names = planted_classifier
    out = d / "cda_model"
    _cli_ok(["train", "--task", "classify", "--model", tiny_model_dir, "--train", d / "train.jsonl", "--dev",
             d / "dev.jsonl", "--out", out, "--epochs", "6", "--batch-size", "16", "--lr", "3e-3", "--quiet",
             "--precision", "fp32", "--seed", "1", "--cda", str(names), "--cda-rate", "0.8", "--layer-lr-decay", "1"])
    summ = json.loads((out / "train_summary.json").read_text())["counterfactual_augmentation"]
    assert summ["eligible_examples"] == 900 and summ["epochs"]["0"]["swapped_examples"] == 720
    assert summ["epochs"]["0"]["swaps_per_list"]["planted_names"] == 720
    gaps = {}
    for m in (model, out):
        _cli_ok(["audit", "fairness", "--model", m, "--data", d / "audit.jsonl", "--swaps", names, "--quiet",
                 "--resamples", "200", "--out", d / f"cda_audit_{m.name}"])
        res = json.loads((d / f"cda_audit_{m.name}" / "result.json").read_text())
        gaps[m.name] = abs(res["counterfactual"]["planted_names"]["pairs"]["reference vs planted"]["gap"])
    assert gaps["cda_model"] < 0.5 * gaps["model"], gaps


# ---------------------------------------------------------------- planted bias: NER

def test_audit_flags_planted_ner_bias_not_the_control(tmp_path, tiny_model_dir):
    rng = random.Random(0)

    def sentence(group, hide):
        firsts, lasts = PLANTED_NAMES[group]
        tag = "O" if hide else "PER"
        person = [(rng.choice(firsts).capitalize(), "O" if hide else "B-PER"),
                  (rng.choice(lasts).capitalize(), "O" if hide else f"I-{tag}")]
        words = [(w, "O") for w in rng.sample(FILLER, rng.randint(3, 6))]
        i = rng.randint(0, len(words))
        return words[:i] + person + words[i:] + [("in", "O"), (rng.choice(["Paris", "Lagos", "Lima"]), "B-LOC"),
                                                 (".", "O")]

    train = [sentence(g, hide=(g == "planted")) for g in PLANTED_NAMES for _ in range(150)]
    rng.shuffle(train)
    write_conll(tmp_path / "train.txt", train)
    write_conll(tmp_path / "dev.txt", [sentence(g, False) for g in ("reference", "control") for _ in range(20)])
    write_conll(tmp_path / "audit.txt", [sentence("reference", False) for _ in range(120)])
    model = tmp_path / "model"
    _cli_ok(["train", "--model", tiny_model_dir, "--train", tmp_path / "train.txt", "--dev", tmp_path / "dev.txt",
             "--out", model, "--epochs", "6", "--batch-size", "16", "--lr", "3e-3", "--quiet", "--precision", "fp32",
             "--layer-lr-decay", "1"])  # random weights: no pretrained layers to protect
    names = write_names_list(tmp_path / "planted_names.txt")
    _cli_ok(["audit", "fairness", "--model", model, "--data", tmp_path / "audit.txt", "--swaps", names,
             "--group-terms", "gender", "--quiet", "--resamples", "400"])
    res = json.loads((model / "audits" / "fairness" / "result.json").read_text())
    cf = res["counterfactual"]["planted_names"]
    assert cf["metric"] == "PER_recall"
    assert cf["groups"]["planted"]["value"] < cf["groups"]["reference"]["value"] - 0.3, cf["groups"]
    assert cf["pairs"]["reference vs planted"]["flagged"]
    assert not cf["pairs"]["reference vs control"]["flagged"], cf["pairs"]["reference vs control"]
    worst = cf["names_least_found"]["planted"][0]  # the names that make the gap are named
    assert worst["name"].lower() in sum(PLANTED_NAMES["planted"], []) and worst["recall"] < 0.5
    assert res["group_metrics"]["terms:gender"]["note"]  # every sentence is 'none': no between-group figures


# ---------------------------------------------------------------- bad input

def test_bad_input_messages(keyword_classifier, ner_model, tmp_path, data_dir):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"the report was {w} today", "label": lab, "region": "x"}) + "\n"
                            for w, lab in (("excellent", "positive"), ("awful", "negative")) * 5))
    r = cli(["audit", "fairness", "--model", keyword_classifier, "--data", data, "--group-column", "gender"])
    assert r.exit_code != 0 and "no group column 'gender'; the file's other columns are 'region'" in r.output
    # nothing to audit at all: non-zero exit, and it says why
    r = cli(["audit", "fairness", "--model", keyword_classifier, "--data", data, "--swaps", "gender,religion"])
    assert r.exit_code != 0 and "nothing could be audited" in r.output and "gender: no example" in r.output
    # a group too small for an interval: values without intervals, and it says so
    r = cli(["audit", "fairness", "--model", keyword_classifier, "--data", data, "--group-column", "region",
             "--swaps", "none", "--out", tmp_path / "o", "--resamples", "100"])
    assert r.exit_code == 0 and "n = 10 is under the minimum group size 30: no interval" in r.output
    r = cli(["audit", "fairness", "--model", ner_model, "--data", data_dir / "conll2003" / "valid.txt",
             "--group-column", "gender", "--limit", "5"])
    assert r.exit_code != 0 and "a CoNLL file has no group columns" in r.output
    r = cli(["train", "--task", "classify", "--train", data, "--out", tmp_path / "m", "--cda", "gender",
             "--augment", "typo"])
    assert r.exit_code != 0 and "cda and augment both rebuild" in r.output
    r = cli(["predict", "--model", keyword_classifier, "--group", "a", "-"], )
    assert r.exit_code != 0 and "no fairness_thresholds.json" in r.output
