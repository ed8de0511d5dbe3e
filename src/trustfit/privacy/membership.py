"""Membership inference from per-example losses: the loss-threshold attack (Yeom et al. 2018) and
its difficulty-calibrated form (Watson et al. 2022: score = reference loss - target loss, the
reference model trained without the examples being attacked). Scores: higher = "member"."""

from __future__ import annotations

from typing import Any

import numpy as np

ROC_POINTS = 200


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The highest true-positive rate with a false-positive rate at most `target`."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def attack_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray, resamples: int = 1000,
                   seed: int = 0) -> dict[str, Any]:
    """ROC AUC (with a seeded bootstrap interval over examples), TPR at 1 % and 0.1 % FPR, and a
    thinned ROC curve for the plot."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    s = np.r_[member_scores, nonmember_scores]
    fpr, tpr, _ = roc_curve(y, s)
    auc = float(roc_auc_score(y, s))
    rng = np.random.default_rng(seed)
    m, n = len(member_scores), len(nonmember_scores)
    boots = []
    for _ in range(resamples):
        bm = member_scores[rng.integers(0, m, m)]
        bn = nonmember_scores[rng.integers(0, n, n)]
        boots.append(roc_auc_score(y, np.r_[bm, bn]))
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(ROC_POINTS, len(fpr))).astype(int))
    return {"auc": auc, "auc_ci": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
            "tpr_at_1pct_fpr": tpr_at_fpr(fpr, tpr, 0.01), "tpr_at_0.1pct_fpr": tpr_at_fpr(fpr, tpr, 0.001),
            "members": m, "non_members": n, "roc": {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()},
            "note": None if min(m, n) >= 1000 else
            f"with {min(m, n)} examples per side, TPR at 0.1 % FPR rests on fewer than one false positive"}


def loss_attack(member_loss: np.ndarray, nonmember_loss: np.ndarray, **kw) -> dict[str, Any]:
    """Members are guessed where the target's loss is low."""
    return attack_metrics(-member_loss, -nonmember_loss, **kw)


def calibrated_attack(member_loss: np.ndarray, nonmember_loss: np.ndarray, member_ref: np.ndarray,
                      nonmember_ref: np.ndarray, **kw) -> dict[str, Any]:
    """Members are guessed where the target's loss is low for how hard the example is (the
    reference model's loss)."""
    return attack_metrics(member_ref - member_loss, nonmember_ref - nonmember_loss, **kw)


def plot_roc(attacks: dict[str, dict[str, Any]], path, title: str) -> None:
    """ROC curves on log-log axes (the low-FPR region is what matters) with the chance line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    grid = np.logspace(-4, 0, 50)
    ax.plot(grid, grid, ls="--", color="grey", label="chance")
    for name, res in attacks.items():
        fpr, tpr = np.maximum(res["roc"]["fpr"], 1e-4), np.maximum(res["roc"]["tpr"], 1e-4)
        ax.plot(fpr, tpr, label=f"{name} (AUC {res['auc']:.3f})")
    ax.set(xscale="log", yscale="log", xlim=(1e-4, 1), ylim=(1e-4, 1.05), xlabel="false positive rate",
           ylabel="true positive rate", title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
