"""Canaries (Carlini et al. 2019, "The Secret Sharer"): random secret-like sentences inserted into
training, then ranked against random candidates of the same format by the trained model's loss.

For an encoder the "secret" is a made-up account number together with a label drawn at random
for each canary (an entity type for NER, a class for classification): the template alone cannot
predict the label, so a low loss on the canary's own digits means the model memorised them.
Exposure = log2(candidates + 1) - log2(rank), the rank among the candidates (1 = lowest loss);
`exposure_fit` extrapolates past the candidate count with a skew-normal fit of their losses
(Carlini et al., section 4.3)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from trustfit.errors import DataError

CANARY_FILE = "canaries.json"
TEMPLATE = "my account number is {secret} ."
DIGITS = 8


def _secret(rng: random.Random) -> list[str]:
    return [str(rng.randrange(10)) for _ in range(DIGITS)]


def _words(secret: list[str]) -> list[str]:
    head, tail = TEMPLATE.split("{secret}")
    return head.split() + secret + tail.split()


def make_canaries(n: int, repeats: int, seed: int, task: str, labels: list[str]) -> dict[str, Any]:
    """`n` canaries (distinct secrets, a random label each), as recorded in canaries.json."""
    rng = random.Random(f"canaries-{seed}")
    if task == "ner":
        types = sorted({l[2:] for l in labels if l != "O"})
        if not types:
            raise DataError("canaries: the training data has no entity types to label a secret with")
    secrets: list[list[str]] = []
    while len(secrets) < n:
        s = _secret(rng)
        if s not in secrets:
            secrets.append(s)
    items = []
    for s in secrets:
        if task == "ner":
            t = rng.choice(types)
            items.append({"secret": "".join(s), "label": t, "tokens": _words(s), "tags": tag_secret(s, t)})
        else:
            items.append({"secret": "".join(s), "label": rng.choice(labels), "text": " ".join(_words(s))})
    return {"template": TEMPLATE, "digits": DIGITS, "repeats": repeats, "seed": seed, "task": task, "canaries": items}


def tag_secret(secret: list[str], entity_type: str) -> list[str]:
    """IOB2 tags of a canary sentence: the template words O, the secret one entity."""
    head, tail = TEMPLATE.split("{secret}")
    return (["O"] * len(head.split()) + [f"B-{entity_type}"] + [f"I-{entity_type}"] * (len(secret) - 1)
            + ["O"] * len(tail.split()))


def insert_canaries(train, record: dict[str, Any]) -> int:
    """Append every canary `repeats` times to a training Corpus or TextCorpus; returns how many rows."""
    from trustfit.data.schema import Sentence
    from trustfit.data.text import TextExample

    added = 0
    next_doc = max((s.doc_id for s in getattr(train, "sentences", [])), default=0) + 1
    for i, c in enumerate(record["canaries"]):
        for _ in range(record["repeats"]):
            if record["task"] == "ner":
                train.sentences.append(Sentence(list(c["tokens"]), list(c["tags"]), doc_id=next_doc + i,
                                                source="<canary>", line=i + 1))
            else:
                train.examples.append(TextExample(c["text"], c["label"], source="<canary>", line=i + 1))
            added += 1
    return added


def write_canaries(out: Path, record: dict[str, Any]) -> None:
    (Path(out) / CANARY_FILE).write_text(json.dumps(record, indent=2))


def read_canaries(model_dir: str | Path) -> dict[str, Any] | None:
    p = Path(model_dir) / CANARY_FILE
    return json.loads(p.read_text()) if p.exists() else None


def _example(record: dict[str, Any], secret: list[str], label: str):
    from trustfit.data.schema import Sentence
    from trustfit.data.text import TextExample

    if record["task"] == "ner":
        return Sentence(_words(secret), tag_secret(secret, label))
    return TextExample(" ".join(_words(secret)), label)


def canary_exposure(scorer, record: dict[str, Any], candidates: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Each canary's rank and exposure among `candidates` random secrets with its label."""
    from scipy import stats

    rng = random.Random(f"candidates-{seed}")
    secrets = {c["secret"] for c in record["canaries"]}
    out = []
    for c in record["canaries"]:
        pool: list[list[str]] = []
        while len(pool) < candidates:
            s = _secret(rng)
            if "".join(s) not in secrets:
                pool.append(s)
        losses = scorer.losses([_example(record, list(c["secret"]), c["label"])]
                               + [_example(record, s, c["label"]) for s in pool])
        own, others = float(losses[0]), losses[1:]
        rank = 1 + int((others < own).sum())
        exposure = math.log2(candidates + 1) - math.log2(rank)
        a, loc, scale = stats.skewnorm.fit(others)
        tail = float(stats.skewnorm.cdf(own, a, loc, scale))
        fit = min(-math.log2(max(tail, 1e-300)), DIGITS * math.log2(10))  # at most the secret space
        out.append({"secret": c["secret"], "label": c["label"], "loss": own,
                    "candidate_loss_median": float(np.median(others)), "rank": rank, "candidates": candidates,
                    "exposure": exposure, "exposure_max": math.log2(candidates + 1), "exposure_fit": fit})
    return out
