"""Customer-service intent router: top-k intents with calibrated confidence; below a threshold
the router hands off to a human instead of guessing; with an answers file (intent -> reply
template) it returns the reply. Also the coverage/accuracy trade-off over thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from trustfit.errors import ConfigError

HANDOFF = "hand off to a human"


def check_threshold(threshold: float) -> float:
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
    return threshold


def load_answers(path: str | Path, intents: Sequence[str]) -> dict[str, str]:
    """intent -> reply template, from YAML or JSON; every intent must be one the model knows."""
    import json

    import yaml

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: answers file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) if p.suffix in (".yaml", ".yml") else \
            json.loads(p.read_text(encoding="utf-8"))
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"{p}: cannot parse: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{p}: expected a mapping of intent: reply text")
    unknown = sorted(set(data) - set(intents))
    if unknown:
        raise ConfigError(f"{p}: unknown intents {', '.join(unknown)}; the model knows {len(intents)} intents, "
                          f"e.g. {', '.join(list(intents)[:5])}")
    return {str(k): v for k, v in data.items()}


@dataclass
class Route:
    action: str  # "answer" or "handoff"
    intent: str | None
    confidence: float
    top_k: list[dict]
    reply: str | None
    reason: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None or k in ("intent", "reply")}


def route(probs: np.ndarray, labels: Sequence[str], threshold: float, answers: dict[str, str] | None = None,
          k: int = 3) -> list[Route]:
    """Decide for each row of calibrated probabilities."""
    out = []
    for row in probs:
        order = np.argsort(-row)[:k]
        top = [{"intent": labels[j], "confidence": round(float(row[j]), 4)} for j in order]
        best, conf = labels[order[0]], float(row[order[0]])
        if conf < threshold:
            out.append(Route("handoff", None, conf, top, HANDOFF, f"confidence {conf:.3f} < threshold {threshold}"))
        elif answers is not None and best not in answers:
            out.append(Route("handoff", best, conf, top, HANDOFF, f"no reply template for intent {best!r}"))
        else:
            out.append(Route("answer", best, conf, top, answers.get(best) if answers else None))
    return out


def coverage_curve(probs: np.ndarray, gold: Sequence[int], points: int = 101) -> dict:
    """Answered share (coverage) and accuracy of the answered queries over thresholds, and the
    lowest threshold (largest coverage) reaching 95 % and 99 % precision."""
    gold = np.asarray(gold)
    conf = probs.max(-1)
    correct = probs.argmax(-1) == gold
    curve = []
    for t in np.linspace(0, 1, points):
        m = conf >= t
        curve.append({"threshold": round(float(t), 4), "coverage": float(m.mean()),
                      "accuracy": float(correct[m].mean()) if m.any() else 1.0})
    # exact operating points from the sorted confidences (every possible threshold)
    order = np.argsort(-conf)
    cum_acc = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    targets = {}
    for target in (0.95, 0.99):
        ok = np.nonzero(cum_acc >= target)[0]
        if len(ok):
            n = int(ok.max()) + 1
            targets[f"{int(target * 100)}"] = {"threshold": float(conf[order][n - 1]), "coverage": n / len(conf),
                                               "answered": n}
        else:
            targets[f"{int(target * 100)}"] = {"threshold": None, "coverage": 0.0, "answered": 0}
    return {"accuracy": float(correct.mean()), "curve": curve, "at_precision": targets, "n": int(len(conf))}


def plot_coverage(cov: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([c["coverage"] for c in cov["curve"]], [c["accuracy"] for c in cov["curve"]], "-o", ms=2)
    for k, v in cov["at_precision"].items():
        if v["threshold"] is not None:
            ax.axvline(v["coverage"], ls="--", color="grey", lw=1)
            ax.annotate(f"{k} % precision: {100 * v['coverage']:.0f} % answered", (v["coverage"], 0.5),
                        fontsize=8, rotation=90, va="center", ha="right")
    ax.set_xlabel("coverage (share answered automatically)")
    ax.set_ylabel("accuracy of answered queries")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"accuracy at full coverage {100 * cov['accuracy']:.1f} %")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
