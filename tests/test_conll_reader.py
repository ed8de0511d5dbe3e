"""Readers on the real shared files, on each documented trap, and on malformed input."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustfit.data import read_conll, spans_from_tags
from trustfit.data.schema import LabelSchema
from trustfit.errors import DataError
from tests.conftest import write_conll


def test_conll2003_counts_and_documents(data_dir):
    train = read_conll(data_dir / "conll2003/train.txt")
    assert len(train) == 14041 and len(train.documents()) == 946
    assert sum(len(spans_from_tags(s.tags)) for s in train) == 23499
    assert train.sentences[0].tokens[:3] == ["EU", "rejects", "German"]
    valid = read_conll(data_dir / "conll2003/valid.txt")
    assert len(valid) == 3250 and len(valid.documents()) == 216
    assert sum(len(spans_from_tags(s.tags)) for s in valid) == 5942
    assert LabelSchema.from_corpus(train).labels == ("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG",
                                                     "B-PER", "I-PER")


def test_wnut_traps(data_dir):
    train = read_conll(data_dir / "wnut17/train.conll")
    assert len(train) == 3394  # tab-only lines are sentence boundaries
    assert sum(len(spans_from_tags(s.tags)) for s in train) == 1975
    dev = read_conll(data_dir / "wnut17/dev.conll")
    assert len(dev) == 1009
    assert all("\ufeff" not in t for s in dev for t in s.tokens)  # Dubbz\ufeff and the lone U+FEFF line
    assert "Dubbz" in {t for s in dev for t in s.tokens}
    assert dev.sentences[-1].tokens[-1] == "!"
    # the I-person -> I-creative-work transition is decoded deterministically (conlleval: a new entity)
    ents = sum(len(spans_from_tags(s.tags)) for s in dev)
    assert ents == 836 and ents == sum(len(spans_from_tags(s.tags)) for s in read_conll(data_dir / "wnut17/dev.conll"))


def test_crlf_and_bom(tmp_path):
    p = tmp_path / "f.conll"
    p.write_bytes("\ufeffEU B-ORG\r\nrejects O\r\n\r\nPeter B-PER\r\n".encode("utf-8"))
    c = read_conll(p)
    assert [s.tokens for s in c] == [["EU", "rejects"], ["Peter"]]


def test_wrong_column_count_names_file_line_and_text(tmp_path):
    p = tmp_path / "bad.conll"
    p.write_text("EU NNP B-NP B-ORG\nrejects VBZ O\nGerman JJ B-NP B-MISC\n")
    with pytest.raises(DataError, match=r"bad.conll:2: expected 4 columns like the first line, found 3 "
                                        r"\(a missing tag\?\): 'rejects VBZ O'"):
        read_conll(p)


def test_missing_tag_in_two_column_file(tmp_path):
    p = tmp_path / "bad.conll"
    p.write_text("EU\tB-ORG\nrejects\n")
    with pytest.raises(DataError, match=r"bad.conll:2: .*found 1"):
        read_conll(p)


def test_all_problems_reported_at_once(tmp_path):
    p = tmp_path / "bad.conll"
    p.write_text("a O\nb\nc O\nd\n")
    with pytest.raises(DataError, match=r"2 malformed lines(.|\n)*:2:(.|\n)*:4:"):
        read_conll(p)


def test_invalid_tag_for_scheme(tmp_path):
    p = write_conll(tmp_path / "f.conll", [[("EU", "E-ORG")]])
    with pytest.raises(DataError, match=r"f.conll:1: tag 'E-ORG' is not valid in IOB2.*--scheme"):
        read_conll(p)
    assert read_conll(p, scheme="bioes").sentences[0].tags == ["I-ORG"]


def test_unknown_scheme(tmp_path):
    p = write_conll(tmp_path / "f.conll", [[("EU", "B-ORG")]])
    with pytest.raises(DataError, match="unknown tag scheme 'xyz'"):
        read_conll(p, scheme="xyz")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.conll"
    p.write_text("")
    with pytest.raises(DataError, match="empty.conll: no sentences found"):
        read_conll(p)
    p.write_text("-DOCSTART- -X- -X- O\n\n")
    with pytest.raises(DataError, match="no sentences found"):
        read_conll(p)


def test_wrong_encoding(tmp_path):
    p = tmp_path / "latin.conll"
    p.write_bytes("Müller B-PER\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.conll:1: cannot decode byte .* as utf-8.*--encoding"):
        read_conll(p)
    assert read_conll(p, encoding="latin-1").sentences[0].tokens == ["Müller"]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.conll: no such file"):
        read_conll(tmp_path / "nope.conll")


def test_file_without_entities(tmp_path):
    c = read_conll(write_conll(tmp_path / "o.conll", [[("a", "O"), ("b", "O")]]))
    with pytest.raises(DataError, match=r"o.conll: no entity tags found.*--tag-column"):
        LabelSchema.from_corpus(c)


def test_unseen_dev_tag_is_an_error_or_mapped_to_o(tmp_path):
    train = read_conll(write_conll(tmp_path / "t.conll", [[("Peter", "B-PER")]]))
    schema = LabelSchema.from_corpus(train)
    dev_path = write_conll(tmp_path / "d.conll", [[("Paris", "B-LOC"), ("x", "O")]])
    with pytest.raises(DataError, match=r"1 tags were never seen in training \(B-LOC\).*--unknown-tags o"):
        schema.check_corpus(read_conll(dev_path))
    dev = schema.check_corpus(read_conll(dev_path), unknown_to_o=True)
    assert dev.sentences[0].tags == ["O", "O"]


def test_choose_columns(tmp_path):
    p = tmp_path / "f.conll"
    p.write_text("B-PER Peter NNP\nO runs VBZ\n")
    c = read_conll(p, token_column=1, tag_column=0)
    assert c.sentences[0].tokens == ["Peter", "runs"] and c.sentences[0].tags == ["B-PER", "O"]
    assert read_conll(p, token_column=1, tag_column=None).sentences[0].tags is None


WORD = st.text(alphabet=st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=8).filter(
    lambda w: w != "-DOCSTART-" and w.strip() == w and "\ufeff" not in w)
SENT = st.lists(st.tuples(WORD, st.sampled_from(["O", "B-PER", "I-PER", "B-LOC"])), min_size=1, max_size=10)


@settings(max_examples=50, deadline=None)
@given(docs=st.lists(st.lists(SENT, min_size=1, max_size=4), min_size=1, max_size=3))
def test_round_trip(tmp_path_factory, docs):
    p = tmp_path_factory.mktemp("rt") / "f.conll"
    lines = []
    for doc in docs:
        lines += ["-DOCSTART- O", ""]
        for s in doc:
            lines += [f"{w}\t{t}" for w, t in s] + ["\t"]  # WNUT-style tab separators
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    c = read_conll(p)
    flat = [s for doc in docs for s in doc]
    assert [x.tokens for x in c] == [[w for w, _ in s] for s in flat]
    assert [x.tags for x in c] == [[t for _, t in s] for s in flat]
    assert len(c.documents()) == len(docs)


def test_delimiter_names():
    from trustfit.data.conll import resolve_delimiter

    assert resolve_delimiter("tab") == "\t" and resolve_delimiter("\\t") == "\t"
    assert resolve_delimiter("space") == " " and resolve_delimiter(None) is None and resolve_delimiter(";") == ";"
