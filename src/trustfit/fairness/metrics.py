"""Group metrics and their intervals.

Two views of the same predictions:
- Fairlearn's `MetricFrame` gives each group's metrics and the between-group differences and
  ratios (`difference()`, `ratio()`);
- a paired bootstrap here gives the intervals: each group's value and its gap to the rest of the
  data (what a flag needs: a group is flagged when it is worse off beyond doubt), and around
  MetricFrame's difference and ratio.

Every metric is a function of per-example counts (correct, predicted positive, true/false
positives per class or entity type...), so one resampling-weight matrix W [R, n] turns the
counts into R bootstrap values at once: sums = W @ counts."""

from __future__ import annotations

from itertools import combinations
from typing import Any, Callable, Sequence

import numpy as np

LEVEL = 0.95


def resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """[R, n] multinomial resampling counts (each row: one bootstrap sample of the n examples)."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def interval(samples: np.ndarray, level: float = LEVEL) -> list[float] | None:
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) < 2:
        return None
    return [float(x) for x in np.quantile(s, [(1 - level) / 2, 1 - (1 - level) / 2])]


def excludes_zero(ci: Sequence[float] | None) -> bool:
    return ci is not None and (ci[0] > 0 or ci[1] < 0)


LOWER_IS_BETTER = ("false_positive_rate", "false_negative_rate")


def disadvantaged(metric: str, gap_ci: Sequence[float] | None) -> bool:
    """The group is worse off than the rest beyond doubt: its interval of (group - rest)
    excludes 0 on the harmful side (below for scores and the positive label's selection rate,
    which counts the positive label as the favourable outcome; above for error rates). A group
    that is better off is not flagged: with one group below, every other group is above."""
    if gap_ci is None:
        return False
    return gap_ci[0] > 0 if metric in LOWER_IS_BETTER else gap_ci[1] < 0


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _f1(tp, fp, fn):
    return _ratio(2 * tp, 2 * tp + fp + fn)


# ---------------------------------------------------------------- count tables per task

class _Counts:
    table: np.ndarray

    def subset(self, keep: np.ndarray):
        """The same counts for the examples where `keep` is true."""
        import copy

        out = copy.copy(self)
        out.table = self.table[keep]
        return out


class ClassifyCounts(_Counts):
    """Per-example counts for accuracy, macro-F1, and selection / false-positive /
    false-negative rates of one positive label (one-vs-rest for more than two labels)."""

    names = ("accuracy", "macro_f1", "selection_rate", "false_positive_rate", "false_negative_rate")

    def __init__(self, gold: np.ndarray, pred: np.ndarray, n_labels: int, positive: int) -> None:
        g1, p1 = np.eye(n_labels)[gold], np.eye(n_labels)[pred]
        pos_t, pos_p = gold == positive, pred == positive
        self.n_labels = n_labels
        # columns: correct, pred_pos, true_neg&pred_pos, true_neg, true_pos&pred_neg, true_pos,
        # then tp, fp, fn per label
        self.table = np.column_stack([gold == pred, pos_p, ~pos_t & pos_p, ~pos_t, pos_t & ~pos_p, pos_t,
                                      g1 * p1, (1 - g1) * p1, g1 * (1 - p1)]).astype(np.float64)

    def values(self, sums: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
        """Metrics from summed counts [..., K] over n examples [...]."""
        L = self.n_labels
        tp, fp, fn = sums[..., 6:6 + L], sums[..., 6 + L:6 + 2 * L], sums[..., 6 + 2 * L:6 + 3 * L]
        with np.errstate(invalid="ignore"):
            per_class = np.nan_to_num(_f1(tp, fp, fn), nan=0.0)  # as scikit-learn: 0 for an absent class
            present = (tp + fn + fp) > 0
            macro = _ratio((per_class * present).sum(-1), present.sum(-1))
        return {"accuracy": _ratio(sums[..., 0], n), "macro_f1": macro, "selection_rate": _ratio(sums[..., 1], n),
                "false_positive_rate": _ratio(sums[..., 2], sums[..., 3]),
                "false_negative_rate": _ratio(sums[..., 4], sums[..., 5])}


class NerCounts(_Counts):
    """Per-sentence true positives, false positives and false negatives per entity type:
    precision, recall and F1 per type, and micro F1 over all types."""

    def __init__(self, gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], types: Sequence[str]) -> None:
        from trustfit.evaluate.ner import sentence_entity_counts

        self.types = list(types)
        # columns: tp, fp, fn of the first type, then of the next...
        self.table = sentence_entity_counts(gold, pred, self.types).reshape(len(gold), -1).astype(np.float64)
        self.names = tuple(f"{t}_{m}" for t in self.types for m in ("precision", "recall", "f1")) + ("f1",)

    def values(self, sums: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for k, t in enumerate(self.types):
            tp, fp, fn = sums[..., 3 * k], sums[..., 3 * k + 1], sums[..., 3 * k + 2]
            out[f"{t}_precision"], out[f"{t}_recall"], out[f"{t}_f1"] = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _f1(tp, fp, fn)
        tp, fp, fn = (sums[..., k::3].sum(-1) for k in range(3))
        out["f1"] = _f1(tp, fp, fn)
        return out


# ---------------------------------------------------------------- group metrics

def group_gaps(counts, groups: np.ndarray, resamples: int, seed: int, min_group_size: int) -> dict[str, Any]:
    """Per group: n, each metric's value with a bootstrap interval, and the gap to the rest of
    the data (group - rest) with its interval, flagged when the group is worse off (see
    `disadvantaged`); groups under `min_group_size` get values only."""
    n = len(groups)
    W = resample_weights(n, resamples, seed)
    total = counts.table.sum(0)
    out: dict[str, Any] = {}
    for g in sorted(set(groups.tolist()), key=str):
        mask = (groups == g).astype(np.float64)
        size = int(mask.sum())
        sums_g = counts.table[mask > 0].sum(0)
        point = counts.values(sums_g, np.float64(size))
        rest = counts.values(total - sums_g, np.float64(n - size))
        entry: dict[str, Any] = {"n": size, "metrics": {}}
        big = size >= min_group_size and n - size >= 1
        if big:
            boot_g = counts.values(W @ (counts.table * mask[:, None]), W @ mask)
            boot_r = counts.values(W @ (counts.table * (1 - mask)[:, None]), W @ (1 - mask))
        for m in counts.names:
            value = float(point[m])
            gap = float(point[m] - rest[m]) if n - size else None
            item = {"value": None if np.isnan(value) else value,
                    "gap_to_rest": None if gap is None or np.isnan(gap) else gap}
            if big:
                item["ci"], item["gap_ci"] = interval(boot_g[m]), interval(boot_g[m] - boot_r[m])
                item["flagged"] = disadvantaged(m, item["gap_ci"])
            else:
                item["note"] = f"n = {size} is under the minimum group size {min_group_size}: no interval"
            entry["metrics"][m] = item
        out[str(g)] = entry
    return out


def metric_frame(metric_fns: dict[str, Callable], y_true, y_pred, sensitive, counts, resamples: int,
                 seed: int) -> dict[str, Any]:
    """Fairlearn's view: by-group values and the between-group difference (max - min) and ratio
    (min / max) of each metric, from `MetricFrame`. Their intervals come from resampling the
    per-example counts here (the same statistic; Fairlearn's own `n_boot` recomputes every metric
    through pandas, 0.24 s a resample on CoNLL-2003 dev: four minutes for 1,000)."""
    from fairlearn.metrics import MetricFrame

    mf = MetricFrame(metrics=metric_fns, y_true=y_true, y_pred=y_pred, sensitive_features=sensitive)
    diff, ratio = mf.difference(), mf.ratio()
    groups = np.asarray(sensitive, dtype=object)
    levels = sorted(set(groups.tolist()), key=str)
    W = resample_weights(len(groups), resamples, seed)
    boot = []  # per group: metric -> [R] values
    for g in levels:
        mask = (groups == g).astype(np.float64)
        boot.append(counts.values(W @ (counts.table * mask[:, None]), W @ mask))
    out = {"by_group": {}, "difference": {}, "ratio": {}, "intervals": "bootstrap of per-example counts, "
           f"{resamples} resamples"}
    for idx in mf.by_group.index:
        key = " & ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)
        out["by_group"][key] = {m: finite_or_none(mf.by_group.loc[idx, m]) for m in metric_fns}
    for m in metric_fns:
        stack = np.stack([b[m] for b in boot])  # [G, R]
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.nanmax(stack, 0) - np.nanmin(stack, 0)
            r = np.nanmin(stack, 0) / np.nanmax(stack, 0)
        out["difference"][m] = {"value": finite_or_none(diff[m]), "ci": interval(d)}
        out["ratio"][m] = {"value": finite_or_none(ratio[m]), "ci": interval(r)}
    return out


def finite_or_none(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


def classify_metric_fns(n_labels: int, positive: int) -> dict[str, Callable]:
    """scikit-learn metrics on label indices, for MetricFrame."""
    from sklearn.metrics import accuracy_score, f1_score

    def rate(mask_fn):
        def fn(y_true, y_pred):
            yt, yp = np.asarray(y_true), np.asarray(y_pred)
            num, den = mask_fn(yt, yp)
            return float(num.sum() / den.sum()) if den.sum() else float("nan")
        return fn

    return {"accuracy": accuracy_score,
            "macro_f1": lambda t, p: f1_score(t, p, labels=sorted(set(np.asarray(t)) | set(np.asarray(p))),
                                              average="macro", zero_division=0),
            "selection_rate": rate(lambda t, p: (p == positive, np.ones_like(p, bool))),
            "false_positive_rate": rate(lambda t, p: ((p == positive) & (t != positive), t != positive)),
            "false_negative_rate": rate(lambda t, p: ((p != positive) & (t == positive), t == positive))}


def ner_metric_fns(counts: NerCounts) -> dict[str, Callable]:
    """Entity metrics for MetricFrame: y_true holds sentence indices, each metric sums their counts."""
    def fn(name):
        return lambda idx, _pred: float(counts.values(counts.table[np.asarray(idx, dtype=int)].sum(0), np.float64(len(idx)))[name])
    return {m: fn(m) for m in counts.names}


# ---------------------------------------------------------------- counterfactual pairs

def pair_gaps(groups: Sequence[str], point: np.ndarray, boot: np.ndarray, preds: np.ndarray | None = None,
              W: np.ndarray | None = None) -> dict[str, Any]:
    """Per pair (a, b) of counterfactual versions: the gap b - a of a statistic ([G] point values)
    with the interval of its bootstrap samples ([R, G], both versions from the same resampled
    examples), flagged when that interval excludes 0; given per-example predictions [n, G] and
    the normalised resampling weights W [R, n], also the flip rate (predictions that differ)."""
    out = {}
    for a, b in combinations(range(len(groups)), 2):
        item: dict[str, Any] = {"gap": float(point[b] - point[a]), "gap_ci": interval(boot[:, b] - boot[:, a])}
        item["flagged"] = excludes_zero(item["gap_ci"])
        if preds is not None:
            f = (preds[:, a] != preds[:, b]).astype(float)
            item["flip_rate"], item["flip_rate_ci"] = float(f.mean()), interval(W @ f)
        out[f"{groups[a]} vs {groups[b]}"] = item
    return out
