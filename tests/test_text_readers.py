"""Classification readers on the shared files and their traps, the split utility, and errors."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trustfit.data.split import split_corpus
from trustfit.data.text import TextExample, TextCorpus, read_text_corpus, write_jsonl
from trustfit.errors import DataError


def test_financial_phrasebank(data_dir):
    c = read_text_corpus(data_dir / "financial_phrasebank/Sentences_50Agree.txt")
    assert len(c) == 4846
    assert c.label_counts() == {"negative": 604, "neutral": 2879, "positive": 1363}
    # latin-1 decoded, split on the last '@'
    assert all("@" not in e.label for e in c)


def test_fpb_split_dedups_before_splitting(data_dir):
    c = read_text_corpus(data_dir / "financial_phrasebank/Sentences_50Agree.txt")
    parts, rep = split_corpus(c, dev=0.1, test=0.1, seed=1)
    assert rep.conflicting_texts == 2
    assert rep.rows_in - rep.duplicate_rows_dropped - rep.conflict_rows_dropped == sum(rep.sizes.values())
    assert len({e.text for e in c}) - rep.conflicting_texts == sum(rep.sizes.values())
    texts = {k: {e.text for e in v} for k, v in parts.items()}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["dev"])
    # stratified: label shares within 2 points across splits
    share = {k: sum(e.label == "negative" for e in v) / len(v) for k, v in parts.items()}
    assert max(share.values()) - min(share.values()) < 0.02
    again, _ = split_corpus(c, dev=0.1, test=0.1, seed=1)
    assert [e.text for e in again["test"]] == [e.text for e in parts["test"]]


def test_banking77_quoted_newlines(data_dir):
    c = read_text_corpus(data_dir / "banking77/train.csv", label_column="category")
    assert len(c) == 10003 and len(c.label_counts()) == 77
    # 10 texts hold newlines inside quotes (most at their ends, which are stripped): the rows are
    # exactly what a real CSV parser reads, not lines
    import csv

    with open(data_dir / "banking77/train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sum("\n" in r["text"] for r in rows) == 10
    assert [e.text for e in c] == [r["text"].strip() for r in rows]
    assert [e.line for e in c][:2] == [2, 3]
    cats = json.loads((data_dir / "banking77/categories.json").read_text())
    assert set(c.label_counts()) == set(cats)


def test_sst2(data_dir):
    c = read_text_corpus(data_dir / "sst2/train.tsv", text_column="sentence")
    assert len(c) == 67349 and set(c.label_counts()) == {"0", "1"}


def test_missing_label_column_names_the_columns(data_dir):
    with pytest.raises(DataError, match=r"train.csv: no column 'label'; the columns are 'text', 'category'"):
        read_text_corpus(data_dir / "banking77/train.csv")


def test_empty_text_and_missing_label(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "fine", "label": "a"}\n{"text": "  ", "label": "b"}\n{"text": "x"}\nnot json\n')
    with pytest.raises(DataError, match=r"3 bad rows(.|\n)*d.jsonl:2: field 'text' is empty(.|\n)*d.jsonl:3: field "
                                        r"'label' \(the label\) is missing(.|\n)*d.jsonl:4: not valid JSON"):
        read_text_corpus(p)


def test_csv_line_numbers_count_quoted_newlines(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('text,label\n"two\nlines",a\n,b\n')
    with pytest.raises(DataError, match=r"d.csv:4: field 'text' is empty"):
        read_text_corpus(p)


def test_fpb_line_without_separator(tmp_path):
    p = tmp_path / "Sentences_x.txt"
    p.write_bytes("Good news@positive\nno separator here\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"Sentences_x.txt:2: no '@'"):
        read_text_corpus(p)


def test_unknown_format_and_empty(tmp_path):
    p = tmp_path / "d.xyz"
    p.write_text("a")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_text_corpus(p)
    q = tmp_path / "e.jsonl"
    q.write_text("")
    with pytest.raises(DataError, match="no examples found"):
        read_text_corpus(q)


def test_bad_split_fractions():
    c = TextCorpus([TextExample("a", "x"), TextExample("b", "y")])
    with pytest.raises(DataError, match="must be in"):
        split_corpus(c, dev=0.6, test=0.5)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("C", "Zl", "Zp")), min_size=1, max_size=30).filter(
    lambda t: t.strip() == t and t)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(TEXT, st.sampled_from(["pos", "neg", "neu"])), min_size=1, max_size=20),
       st.sampled_from(["jsonl", "csv"]))
def test_round_trip(tmp_path_factory, rows, fmt):
    d = tmp_path_factory.mktemp("rt")
    ex = [TextExample(t, l) for t, l in rows]
    if fmt == "jsonl":
        p = d / "f.jsonl"
        write_jsonl(p, ex)
    else:
        import csv

        p = d / "f.csv"
        with p.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(rows)
    c = read_text_corpus(p)
    assert [(e.text, e.label) for e in c] == [(t.strip(), l) for t, l in rows]
