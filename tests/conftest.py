"""Shared fixtures: offline hub, paths to the shared data, a session-scoped tiny random BERT over
the packaged model's real WordPiece vocabulary, and small CoNLL slices."""

from __future__ import annotations

import os

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
