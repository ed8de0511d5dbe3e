"""Property tests: every word is a target exactly once, labels sit on first sub-tokens, inputs
fit the limit, context never crosses a document, and word values round-trip."""

from hypothesis import given, settings
from hypothesis import strategies as st

from trustfit.encode.align import IGNORE_INDEX, first_positions, first_subtoken_labels, group_pieces, word_values
from trustfit.encode.windows import Specials, build_features, chunk_words

SPECIALS = Specials(prefix=[101], suffix=[102])


@st.composite
def documents(draw):
    n_docs = draw(st.integers(1, 3))
    sentences, labels, docs = [], [], []
    for _ in range(n_docs):
        doc = []
        for _ in range(draw(st.integers(1, 4))):
            n = draw(st.integers(0, 40))
            pieces = [[1000 + len(sentences) * 100 + w] * draw(st.integers(1, 4)) for w in range(n)]
            doc.append(len(sentences))
            sentences.append(pieces)
            labels.append([draw(st.integers(0, 8)) for _ in range(n)])
        docs.append(doc)
    return sentences, labels, docs


@settings(max_examples=200, deadline=None)
@given(documents(), st.integers(12, 64), st.sampled_from([0, 8, 32]), st.sampled_from([0, 4, 16]), st.booleans())
def test_every_word_is_a_target_exactly_once(data, max_length, context, stride, pack):
    sentences, labels, docs = data
    feats = build_features(sentences, labels, docs, SPECIALS, max_length, context, stride, pack=pack, pack_tokens=24)
    seen = [w for f in feats for w in f.words]
    expected = [(s, w) for s, sent in enumerate(sentences) for w in range(len(sent))]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    doc_of = {s: d for d, doc in enumerate(docs) for s in doc}
    for f in feats:
        assert len(f) <= max_length
        assert f.input_ids[0] == 101 and f.input_ids[-1] == 102
        # labels only at target first sub-tokens, equal to the word's label
        assert [i for i, l in enumerate(f.labels) if l != IGNORE_INDEX] == [
            p for p, (s, w) in zip(f.positions, f.words) if labels[s][w] != IGNORE_INDEX]
        for p, (s, w) in zip(f.positions, f.words):
            assert f.labels[p] == labels[s][w]
            assert f.input_ids[p] == sentences[s][w][0]
        # context stays inside the document (sentence ids are encoded in the piece ids)
        sents_in = {(t - 1000) // 100 for t in f.input_ids if t >= 1000}
        assert len({doc_of[s] for s in sents_in}) <= 1
        if context == 0 and not pack:
            assert len(sents_in) <= 1
        if pack:  # margins: at most `context` pieces a side; max(context, stride) around a cut sentence
            first, last = f.positions[0], f.positions[-1]
            end = last + len(sentences[f.words[-1][0]][f.words[-1][1]])
            whole = all(sum(1 for x in f.words if x[0] == s) == len(sentences[s]) for s, _ in f.words)
            side = context if whole else max(context, stride)
            assert first - 1 <= side and len(f) - 1 - end <= side
    # a packed feature's weight counts its sentences: all weights add up to the sentence count
    if pack:
        assert abs(sum(f.weight for f in feats) - sum(1 for s in sentences if s)) < 1e-6


@given(st.lists(st.integers(1, 5), max_size=50), st.integers(5, 40))
def test_chunks_cover_in_order(counts, budget):
    chunks = chunk_words(counts, budget)
    assert [i for a, b in chunks for i in range(a, b)] == list(range(len(counts)))
    for a, b in chunks:
        assert b - a == 1 or sum(counts[a:b]) <= budget


@given(st.lists(st.integers(1, 6), max_size=30))
def test_first_subtoken_round_trip(counts):
    labels = list(range(len(counts)))
    row = first_subtoken_labels(counts, labels)
    assert len(row) == sum(counts)
    assert word_values(row, counts) == labels
    assert [row[p] for p in first_positions(counts)] == labels
    assert row.count(IGNORE_INDEX) == sum(counts) - len(counts)


def test_group_pieces_gives_every_word_a_piece():
    # word 1 produced no sub-tokens (e.g. a lone U+FEFF); word 2 is capped at 2 pieces
    pieces = group_pieces([0, 2, 2, 2], [5, 6, 7, 8], 3, unk_id=100, max_pieces=2)
    assert pieces == [[5], [100], [6, 7]]


def test_real_tokenizer_alignment(tiny_tokenizer):
    from trustfit.data.schema import Corpus, LabelSchema, Sentence
    from trustfit.encode.tokenize import encode_corpus

    s = Sentence(["EU", "rejects", "\ufeff", "Zwingmann", "lamb"], ["B-ORG", "O", "O", "B-PER", "O"])
    schema = LabelSchema.from_types(["ORG", "PER"])
    (f,) = encode_corpus(Corpus([s]), tiny_tokenizer, schema, 64)
    toks = tiny_tokenizer.convert_ids_to_tokens(f.input_ids)
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]"
    assert [toks[p] for p in f.positions] == ["eu", "rejects", "[UNK]", "z", "lamb"]
    assert [f.labels[p] for p in f.positions] == [schema.label2id[t] for t in s.tags]
    assert sum(l != IGNORE_INDEX for l in f.labels) == 5


@given(st.lists(st.floats(0.1, 5), min_size=1, max_size=80), st.integers(1, 12), st.integers(0, 3))
def test_weighted_batches_cover_every_feature_once(weights, batch_size, epoch):
    from trustfit.encode.batching import BucketBatchSampler

    s = BucketBatchSampler([int(w * 10) for w in weights], batch_size, seed=1, weights=weights, pool_batches=2)
    s.set_epoch(epoch)
    batches = s.global_batches()
    assert sorted(i for b in batches for i in b) == list(range(len(weights)))
    assert len(batches) == s.num_batches(epoch)
    # every batch reaches the batch size in weight, except at most the last one of each pool
    pool = max(1, round(batch_size * 2 / (sum(weights) / len(weights))))
    short = [b for b in batches if sum(weights[i] for i in b) < batch_size - 1e-9]
    assert len(short) <= -(-len(weights) // pool)


@given(st.lists(st.integers(1, 300), max_size=60), st.integers(1, 64), st.integers(1, 5000))
def test_token_budget_batches(lengths, max_items, max_tokens):
    from trustfit.predict import token_budget_batches

    lengths = sorted(lengths)
    batches = token_budget_batches(lengths, max_items, max_tokens)
    assert [i for b in batches for i in b] == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= max_items
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= max_tokens
