"""The evaluation's files: result.json (kind "recommendation", the audit convention's fields),
report.md (one table per slice) and metrics.png (each method's AUC, nDCG@10, HitRate@10, MRR)."""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = ("auc", "ndcg@10", "hitrate@10", "mrr", "coverage@10", "diversity@10", "events")


def _fmt(v) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else f"{v:.4f}"


def table(result: dict, slice_name: str = "all") -> str:
    rows = ["| method | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for m, by_slice in result["methods"].items():
        if slice_name in by_slice:
            rows.append(f"| {m} | " + " | ".join(_fmt(by_slice[slice_name].get(c)) for c in COLUMNS) + " |")
    return "\n".join(rows)


def headline(result: dict) -> list[dict]:
    best = result["methods"]["combined"]["all"]
    return [{"name": f"combined ranker {k}", "value": best[k]} for k in ("auc", "ndcg@10", "hitrate@10")
            if best.get(k) is not None]


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = ("auc", "ndcg@10", "hitrate@10", "mrr")
    methods = list(result["methods"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4))
    for ax, metric in zip(axes, metrics):
        for sl, shift, colour in (("all", -0.2, "tab:blue"), ("cold-start", 0.2, "tab:orange")):
            vals = [result["methods"][m].get(sl, {}).get(metric) for m in methods]
            ax.barh(np.arange(len(methods)) + shift, [v or 0 for v in vals], height=0.4, color=colour, label=sl)
        ax.set_yticks(range(len(methods)), methods if ax is axes[0] else [""] * len(methods))
        ax.set_title(metric)
        ax.invert_yaxis()
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    result = {**result, "headline": headline(result), "plots": ["metrics.png"]}
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    ev, tm = result["events"], result["timing"]
    lines = [f"# Recommendation: evaluated by time on {result['data']['path']}", "",
             f"{ev['labelled']} rated events ({ev['liked']} liked; {ev['ranked']} ranked over the catalogue), "
             f"{ev['cold_start_users']} cold-start users; history: {ev['history_events']} earlier interactions "
             f"({ev['history_events_ignored_overlapping_period']} ignored: at or after the period's start); "
             f"{ev['skipped_unknown_item']} interactions with items the catalogue lacks skipped.", "",
             f"Ranking time per user: stage 1 {tm['stage1_ms_per_user']:.1f} ms, stage 2 "
             f"{tm['stage2_ms_per_user']:.1f} ms (at most {tm['candidates_at_most']} candidates).", ""]
    for sl in result["slices"]:
        lines += [f"## {sl}", "", table(result, sl), ""]
    lines += ["![metrics](metrics.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    plot(result, out / "metrics.png")
