"""Shared fixtures: offline hub, paths to the shared data, a session-scoped tiny random BERT over
the packaged model's real WordPiece vocabulary, and small CoNLL slices."""

from __future__ import annotations

import json
import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def write_conll(path: Path, sentences: list[list[tuple[str, str]]], docstart: bool = False) -> Path:
    lines = []
    if docstart:
        lines += ["-DOCSTART- -X- -X- O", ""]
    for s in sentences:
        lines += [f"{w} {t}" for w, t in s] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def slice_file(src: Path, dst: Path, n: int) -> Path:
    blocks = src.read_text(encoding="utf-8").split("\n\n")
    keep, count = [], 0
    for b in blocks:
        keep.append(b)
        if b.strip() and not b.startswith("-DOCSTART-"):
            count += 1
        if count >= n:
            break
    dst.write_text("\n\n".join(keep) + "\n", encoding="utf-8")
    return dst


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.exists():
        pytest.fail(f"shared data not found at {DATA}: the tests read ../shared/data beside the repo")
    return DATA


@pytest.fixture(scope="session")
def packaged_model_path() -> str:
    from trustfit.models.backbone import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, packaged_model_path) -> Path:
    """A randomly initialised 2-layer, hidden-32 BERT with the real uncased WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(packaged_model_path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from trustfit.models.backbone import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def conll_slices(tmp_path_factory, data_dir) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("slices")
    return (slice_file(data_dir / "conll2003/train.txt", d / "train.txt", 200),
            slice_file(data_dir / "conll2003/valid.txt", d / "valid.txt", 60))


def _cli_ok(args):
    from typer.testing import CliRunner

    from trustfit.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


POSITIVE = ["excellent", "great", "wonderful", "superb"]
NEGATIVE = ["terrible", "awful", "horrible", "dreadful"]
FILLER = ("the report on our quarterly results was published by the company today and many people read "
          "it while the market stayed calm after lunch in the city").split()


def synthetic_sentence(rng: random.Random, label: str) -> str:
    words = rng.sample(FILLER, rng.randint(6, 10))
    words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
    return " ".join(words)


@pytest.fixture(scope="session")
def keyword_classifier(tmp_path_factory, tiny_model_dir):
    """A tiny classifier whose label is decided by one sentiment word: explanations of it have a
    known right answer."""
    d = tmp_path_factory.mktemp("kw")
    rng = random.Random(0)
    for name, n in (("train", 600), ("dev", 60)):
        rows = [{"text": synthetic_sentence(rng, lab), "label": lab}
                for lab in ("positive", "negative") for _ in range(n // 2)]
        rng.shuffle(rows)
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = d / "model"
    _cli_ok(["train", "--task", "classify", "--model", tiny_model_dir, "--train", d / "train.jsonl", "--dev",
        d / "dev.jsonl", "--out", out, "--epochs", "4", "--batch-size", "16", "--lr", "3e-3", "--quiet",
        "--precision", "fp32", "--layer-lr-decay", "1"])  # random weights: no pretrained layers to protect
    dev = json.loads((out / "dev_metrics.json").read_text())
    assert dev["accuracy"] > 0.9, dev["accuracy"]  # the rule was learnt: explanations have a right answer
    return out


FIRST = ["Maria", "John", "Ahmed", "Chen", "Olga", "Pierre", "Amara", "Lucas"]
LAST = ["Lopez", "Smith", "Haddad", "Wei", "Ivanova", "Dubois", "Okafor", "Silva"]
CITIES = ["Paris", "Lagos", "Berlin", "Lima", "Osaka", "Cairo"]


def synthetic_ner_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """Filler words with a two-word person and a city: entities a tiny model learns fast."""
    words = [(w, "O") for w in rng.sample(FILLER, rng.randint(4, 8))]
    person = [(rng.choice(FIRST), "B-PER"), (rng.choice(LAST), "I-PER")]
    city = [(rng.choice(CITIES), "B-LOC")]
    i, j = sorted(rng.sample(range(len(words) + 1), 2))
    return words[:i] + person + words[i:j] + [("in", "O")] + city + words[j:] + [(".", "O")]


def write_synthetic_ner(d: Path, seed: int, **sizes: int) -> Path:
    """Files NAME.txt of synthetic NER sentences, sizes[NAME] each, drawn in order from one seeded rng."""
    rng = random.Random(seed)
    for name, n in sizes.items():
        write_conll(d / f"{name}.txt", [synthetic_ner_sentence(rng) for _ in range(n)])
    return d


@pytest.fixture(scope="session")
def ner_model(tmp_path_factory, tiny_model_dir):
    """A tiny NER model trained on synthetic sentences until it finds their people and cities."""
    d = tmp_path_factory.mktemp("ner")
    write_synthetic_ner(d, 0, train=400, dev=40)
    out = d / "model"
    _cli_ok(["train", "--model", tiny_model_dir, "--train", d / "train.txt", "--dev", d / "dev.txt", "--out", out,
             "--epochs", "6", "--batch-size", "16", "--lr", "3e-3", "--quiet", "--precision", "fp32",
             "--layer-lr-decay", "1"])  # random weights: no pretrained layers to protect
    assert json.loads((out / "dev_metrics.json").read_text())["token_accuracy"] > 0.95
    return out
