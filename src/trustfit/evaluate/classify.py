"""Classification metrics: accuracy, macro-F1, per-class precision/recall/F1/support, confusion
matrix, calibration (expected calibration error + reliability bins, NLL), and temperature
scaling (Guo et al. 2017) fitted on dev logits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class ClassifyMetrics:
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    labels: list[str]
    ece: float
    nll: float
    reliability: list[dict[str, float]]
    n: int
    temperature: float = 1.0
    extra: dict = field(default_factory=dict)

    @property
    def f1(self) -> float:
        return self.macro_f1

    def to_json(self) -> dict:
        return asdict(self)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def calibration(probs: np.ndarray, gold: np.ndarray, n_bins: int = 15) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error over equal-width confidence bins, and the bins themselves."""
    conf = probs.max(-1)
    correct = (probs.argmax(-1) == gold).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    ece, bins = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            acc, c = float(correct[m].mean()), float(conf[m].mean())
            ece += m.mean() * abs(acc - c)
            bins.append({"lo": float(lo), "hi": float(hi), "count": int(m.sum()), "accuracy": acc, "confidence": c})
    return float(ece), bins


def classify_metrics(gold: Sequence[int], logits: np.ndarray, labels: Sequence[str],
                     temperature: float = 1.0) -> ClassifyMetrics:
    """All classification metrics from gold label ids and logits [n, classes]."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    gold = np.asarray(gold)
    probs = softmax(np.asarray(logits, dtype=np.float64), temperature)
    pred = probs.argmax(-1)
    ids = list(range(len(labels)))
    P, R, F, S = precision_recall_fscore_support(gold, pred, labels=ids, zero_division=0)
    per = {labels[i]: {"precision": float(P[i]), "recall": float(R[i]), "f1": float(F[i]), "support": int(S[i])}
           for i in ids}
    ece, bins = calibration(probs, gold)
    nll = float(-np.log(np.clip(probs[np.arange(len(gold)), gold], 1e-12, 1)).mean()) if len(gold) else 0.0
    return ClassifyMetrics(
        accuracy=float(accuracy_score(gold, pred)), macro_f1=float(f1_score(gold, pred, labels=ids, average="macro",
                                                                            zero_division=0)),
        per_class=per, confusion=confusion_matrix(gold, pred, labels=ids).tolist(), labels=list(labels), ece=ece,
        nll=nll, reliability=bins, n=len(gold), temperature=temperature)


def fit_temperature(logits: np.ndarray, gold: Sequence[int], max_iter: int = 200) -> float:
    """The temperature T > 0 minimising dev NLL of softmax(logits / T) (LBFGS on log T)."""
    import torch

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(gold), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def plot_confusion(m: ClassifyMetrics, path: str | Path) -> None:
    """Confusion matrix as a PNG (row-normalised colours, counts written when few classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(m.confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(m.labels)
    size = max(4.0, min(22.0, 0.28 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), m.labels, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), m.labels, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(f"accuracy {100 * m.accuracy:.1f} %, macro-F1 {100 * m.macro_f1:.1f} %")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(m: ClassifyMetrics, path: str | Path) -> None:
    """Reliability diagram: accuracy against confidence per bin, with the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    for b in m.reliability:
        ax.bar((b["lo"] + b["hi"]) / 2, b["accuracy"], width=b["hi"] - b["lo"], edgecolor="black", alpha=0.7,
               color="tab:blue")
    ax.plot([b["confidence"] for b in m.reliability], [b["accuracy"] for b in m.reliability], "o-", color="tab:red",
            label="accuracy per bin")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"ECE {100 * m.ece:.2f} % (T = {m.temperature:.2f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_classify(m: ClassifyMetrics, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title=f"Classification: accuracy {100 * m.accuracy:.2f} %, macro-F1 {100 * m.macro_f1:.2f} %, "
                    f"ECE {100 * m.ece:.2f} %")
    for c in ("", "precision", "recall", "f1", "support"):
        t.add_column(c, justify="right" if c else "left")
    for lab, r in m.per_class.items():
        t.add_row(lab, f"{100 * r['precision']:.2f}", f"{100 * r['recall']:.2f}", f"{100 * r['f1']:.2f}",
                  str(r["support"]))
    console.print(t)
