import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustfit.data.tags import convert_tags, repair_iob2, spans_from_tags, tag_problem
from trustfit.errors import DataError
from trustfit.evaluate.ner import entity_scores

TAGS = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])


def test_iob1_to_iob2():
    assert convert_tags(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC"], "iob1") == \
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]


def test_bioes_and_bilou_to_iob2():
    assert convert_tags(["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"], "bioes") == \
        ["B-PER", "B-LOC", "I-LOC", "I-LOC", "O"]
    assert convert_tags(["U-PER", "B-LOC", "L-LOC"], "bilou") == ["B-PER", "B-LOC", "I-LOC"]


def test_unknown_scheme_is_an_error():
    with pytest.raises(DataError, match="unknown tag scheme 'bio3'.*iob1, iob2, bioes, bilou"):
        convert_tags(["O"], "bio3")


def test_tag_problem_messages():
    assert tag_problem("E-PER", "iob2") == "tag 'E-PER' is not valid in IOB2 (expected O or B-TYPE, I-TYPE)"
    assert tag_problem("B_PER", "iob2") is not None
    assert tag_problem("S-PER", "bioes") is None


def test_spans_conlleval_semantics():
    # a stray I- starts an entity; a type change inside splits
    assert [(s.start, s.end, s.label) for s in spans_from_tags(["I-PER", "I-PER", "O", "B-LOC", "I-PER"])] == \
        [(0, 2, "PER"), (3, 4, "LOC"), (4, 5, "PER")]


@given(st.lists(TAGS, max_size=30))
def test_repair_keeps_entities_and_is_valid(tags):
    fixed = repair_iob2(tags)
    assert spans_from_tags(fixed) == spans_from_tags(tags)
    for prev, cur in zip(["O"] + fixed, fixed):
        if cur.startswith("I-"):
            assert prev[2:] == cur[2:]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(TAGS, TAGS), min_size=1, max_size=12), min_size=1, max_size=6))
def test_entity_scores_equal_conlleval_mode(pairs):
    """Our strict-on-repaired scores equal seqeval's default mode, which reproduces conlleval."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    gold = [[g for g, _ in s] for s in pairs]
    pred = [[p for _, p in s] for s in pairs]
    ours = entity_scores(gold, pred)["micro"]
    assert ours["f1"] == pytest.approx(f1_score(gold, pred, zero_division=0))
    assert ours["precision"] == pytest.approx(precision_score(gold, pred, zero_division=0))
    assert ours["recall"] == pytest.approx(recall_score(gold, pred, zero_division=0))
