"""Split one training file into per-client files for a simulated federation, and say what
each client got (sizes, label or tag distribution) in `partitions.json`.

Specs: `iid` (uniform random examples, equal sizes); `dirichlet:ALPHA` (per label, the shares
of the clients drawn from Dirichlet(ALPHA): Hsu et al. 2019; small alpha = skewed owners); a
NER sentence's label is its most frequent entity type, 'O' when it has none); `by-document`
(NER: whole documents, contiguous in file order, as owners holding their own articles).
Each client keeps a small dev split of its own for federated evaluation."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trustfit.errors import ConfigError, DataError

PARTITIONS = "iid | dirichlet:ALPHA (e.g. dirichlet:0.5) | by-document"
MIN_EXAMPLES = 2  # a client needs something to train on after its dev split


@dataclass(frozen=True)
class PartitionSpec:
    kind: str  # iid | dirichlet | by-document
    alpha: float | None = None

    def __str__(self) -> str:
        return f"dirichlet:{self.alpha:g}" if self.kind == "dirichlet" else self.kind


def parse_partition(spec: str) -> PartitionSpec:
    """`iid`, `dirichlet:0.5` or `by-document`; anything else is a ConfigError naming the forms."""
    s = spec.strip().lower()
    if s in ("iid", "by-document"):
        return PartitionSpec(s)
    m = re.fullmatch(r"dirichlet:([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)", s)
    if m and float(m.group(1)) > 0:
        return PartitionSpec("dirichlet", float(m.group(1)))
    raise ConfigError(f"--partition: cannot parse {spec!r}; use {PARTITIONS} (alpha above 0)")


def example_labels(task) -> list[str]:
    """The label each training example is partitioned by."""
    if task.cfg.task == "ner":
        from trustfit.data.tags import spans_from_tags

        out = []
        for s in task.train.sentences:
            types = Counter(sp.label for sp in spans_from_tags(s.tags or []))
            out.append(min(types, key=lambda t: (-types[t], t)) if types else "O")
        return out
    return [e.label for e in task.train.examples]


def split_indices(labels: list[str], n_clients: int, spec: PartitionSpec, seed: int,
                  documents: list[list[int]] | None = None) -> list[list[int]]:
    """Example indices per client: disjoint, covering every example, each client non-empty."""
    if n_clients < 1:
        raise ConfigError(f"--clients: {n_clients}; at least 1")
    n = len(labels)
    rng = np.random.default_rng(seed)
    if spec.kind == "iid":
        parts = [p.tolist() for p in np.array_split(rng.permutation(n), n_clients)]
    elif spec.kind == "by-document":
        if not documents:
            raise ConfigError("--partition by-document: the training file marks no documents (-DOCSTART-); "
                              "use iid or dirichlet:ALPHA")
        parts = _contiguous_documents(documents, n_clients)
    else:
        parts = _dirichlet(labels, n_clients, spec.alpha or 1.0, rng)
    sizes = [len(p) for p in parts]
    if min(sizes) < MIN_EXAMPLES:
        what = (f"{len(documents)} documents" if spec.kind == "by-document" and documents else f"{n} examples")
        raise ConfigError(f"--partition {spec}: {sizes.count(0) or sum(s < MIN_EXAMPLES for s in sizes)} of "
                          f"{n_clients} clients get fewer than {MIN_EXAMPLES} examples from {what}; use fewer "
                          "clients" + (" or a larger alpha" if spec.kind == "dirichlet" else ""))
    check_disjoint_cover(parts, n)
    return [sorted(p) for p in parts]


def _contiguous_documents(documents: list[list[int]], n_clients: int) -> list[list[int]]:
    """Whole documents in file order, cut where the running sentence count passes k/n of the total."""
    if len(documents) < n_clients:
        return [d for d in documents] + [[] for _ in range(n_clients - len(documents))]
    total = sum(len(d) for d in documents)
    parts: list[list[int]] = [[] for _ in range(n_clients)]
    seen = k = 0
    for j, doc in enumerate(documents):
        # the client whose share the running count has reached; never skip one, and leave
        # a document for each later client
        k = min(k + 1, max(k, seen * n_clients // total, n_clients - (len(documents) - j)))
        parts[k].extend(doc)
        seen += len(doc)
    return parts


def _dirichlet(labels: list[str], n_clients: int, alpha: float, rng, tries: int = 100) -> list[list[int]]:
    """Per label, client shares from Dirichlet(alpha); redrawn while a client gets too little."""
    by_label: dict[str, list[int]] = {}
    for i, l in enumerate(labels):
        by_label.setdefault(l, []).append(i)
    parts: list[list[int]] = []
    for _ in range(tries):
        parts = [[] for _ in range(n_clients)]
        for l in sorted(by_label):
            idx = rng.permutation(by_label[l])
            shares = rng.dirichlet([alpha] * n_clients)
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= MIN_EXAMPLES:
            break
    return parts


def dev_split(indices: list[int], share: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, dev) of one client: `share` of its examples held out, none when it has fewer than 10."""
    if share <= 0 or len(indices) < 10:
        return indices, []
    rng = np.random.default_rng(seed)
    order = rng.permutation(indices)
    n_dev = max(1, int(round(share * len(indices))))
    return sorted(order[n_dev:].tolist()), sorted(order[:n_dev].tolist())


def write_ner(path: Path, corpus, indices: list[int]) -> None:
    """CoNLL (word, IOB2 tag) with a -DOCSTART- line wherever the document changes."""
    lines: list[str] = []
    last_doc = None
    for i in indices:
        s = corpus.sentences[i]
        if corpus.has_documents and s.doc_id != last_doc:
            lines += ["-DOCSTART- O", ""]
            last_doc = s.doc_id
        lines += [f"{w} {t}" for w, t in zip(s.tokens, s.tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_partitions(task, n_clients: int, spec: PartitionSpec, out: Path, seed: int = 42,
                     dev_share: float = 0.1) -> dict[str, Any]:
    """Write `out/client-K/{train,dev}` files and `out/partitions.json`; returns that summary."""
    from trustfit.data.text import write_jsonl

    labels = example_labels(task)
    docs = task.train.documents() if task.cfg.task == "ner" and task.train.has_documents else None
    parts = split_indices(labels, n_clients, spec, seed, docs)
    out.mkdir(parents=True, exist_ok=True)
    ext = "conll" if task.cfg.task == "ner" else "jsonl"
    clients = []
    for k, idx in enumerate(parts):
        train_idx, dev_idx = dev_split(idx, dev_share, seed + k)
        folder = out / f"client-{k}"
        folder.mkdir(exist_ok=True)
        files = {}
        for name, sel in (("train", train_idx), ("dev", dev_idx)):
            if not sel:
                continue
            path = folder / f"{name}.{ext}"
            if task.cfg.task == "ner":
                write_ner(path, task.train, sel)
            else:
                write_jsonl(path, [task.train.examples[i] for i in sel])
            files[name] = str(path)
        clients.append({"client": k, "examples": len(idx), "train_examples": len(train_idx),
                        "dev_examples": len(dev_idx), "files": files,
                        "label_counts": dict(sorted(Counter(labels[i] for i in idx).items()))})
    summary = {"partition": str(spec), "clients": clients, "seed": seed, "dev_share": dev_share,
               "source": task.cfg.train, "examples": len(labels),
               "label_of_example": "most frequent entity type ('O': none)" if task.cfg.task == "ner" else "class"}
    (out / "partitions.json").write_text(json.dumps(summary, indent=2))
    return summary


def check_disjoint_cover(parts: list[list[int]], n: int) -> None:
    """Raise DataError unless `parts` are disjoint and together hold 0..n-1 (a partitioner's contract)."""
    flat = [i for p in parts for i in p]
    if len(flat) != len(set(flat)) or set(flat) != set(range(n)):
        raise DataError("partition: parts overlap or miss examples")
