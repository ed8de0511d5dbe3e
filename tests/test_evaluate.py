"""Evaluation against entities counted by hand on a small hand-written corpus."""

import json

import pytest

from trustfit.evaluate.ner import ner_metrics, write_conll_predictions
from trustfit.data.schema import Sentence

# Sentence 1: gold PER(0-2) LOC(4) ; pred PER(0-2) correct, LOC(4) predicted as ORG -> wrong
# Sentence 2: gold ORG(0-3) MISC(5) ; pred ORG(0-2) boundary error, MISC(5) correct, extra PER(7)
# Sentence 3: gold LOC(1) ; pred LOC(1) correct
GOLD = [
    ["B-PER", "I-PER", "O", "O", "B-LOC", "O"],
    ["B-ORG", "I-ORG", "I-ORG", "O", "O", "B-MISC", "O", "O"],
    ["O", "B-LOC", "O"],
]
PRED = [
    ["B-PER", "I-PER", "O", "O", "B-ORG", "O"],
    ["B-ORG", "I-ORG", "O", "O", "O", "B-MISC", "O", "B-PER"],
    ["O", "B-LOC", "O"],
]


def test_hand_counted_entity_scores():
    m = ner_metrics(GOLD, PRED)
    # gold entities: 5 ; predicted: 6 ; correct: PER, MISC, LOC(s3) = 3
    assert m.entity["micro"]["precision"] == pytest.approx(3 / 6)
    assert m.entity["micro"]["recall"] == pytest.approx(3 / 5)
    assert m.entity["micro"]["f1"] == pytest.approx(2 * 0.5 * 0.6 / 1.1)
    assert m.entity["PER"] == {"precision": pytest.approx(0.5), "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert m.entity["LOC"]["recall"] == pytest.approx(0.5) and m.entity["LOC"]["precision"] == 1.0
    assert m.entity["ORG"]["f1"] == 0.0 and m.entity["ORG"]["support"] == 1
    assert m.entity["MISC"]["f1"] == 1.0


def test_token_report_has_every_tag_and_averages():
    labels = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    m = ner_metrics(GOLD, PRED, labels)
    assert set(labels) | {"micro", "macro", "weighted"} == set(m.token)
    # 17 words, wrong: LOC->ORG, I-ORG->O, O->B-PER = 3
    assert m.token_accuracy == pytest.approx(14 / 17)
    assert m.token["O"]["support"] == 9
    assert m.token["I-LOC"]["support"] == 0
    assert m.token["micro"]["f1"] == pytest.approx(14 / 17)
    json.dumps(m.to_json())


def test_stray_inside_tag_counts_like_conlleval():
    m = ner_metrics([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])
    assert m.entity["micro"]["f1"] == 1.0


def test_predictions_file_has_every_token(tmp_path):
    sents = [Sentence(["EU", "rejects"], ["B-ORG", "O"]), Sentence(["Peter"], ["B-PER"])]
    write_conll_predictions(tmp_path / "p.conll", sents, [["B-ORG", "O"], ["O"]])
    assert (tmp_path / "p.conll").read_text() == "EU B-ORG B-ORG\nrejects O O\n\nPeter B-PER O\n\n"
