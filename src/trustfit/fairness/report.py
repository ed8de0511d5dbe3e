"""The human views of a fairness result: the headline a card shows first, report.md, and
fairness.png (each gap with its interval)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


def headline(group_json: dict, cf_json: dict, tpl_json: dict) -> list[dict[str, Any]]:
    """The few numbers a card shows first: the largest counterfactual gap per list and suite,
    and the count of flagged groups per grouping."""
    out = []
    for where, block in (("data", cf_json), ("templates", tpl_json)):
        for spec, res in block.items():
            if not res or not res["pairs"]:
                continue
            pair, item = max(res["pairs"].items(), key=lambda kv: abs(kv[1]["gap"]))
            out.append({"name": f"largest {res['metric']} gap, {spec} swaps ({where})", "value": round(item["gap"], 4),
                        "pair": pair, "ci": item["gap_ci"], "flagged": item["flagged"],
                        "flip_rate": round(item["flip_rate"], 4) if "flip_rate" in item else None,
                        "list": spec, "where": where, "sentences": res["examples"], "metric": res["metric"],
                        "flagged_pairs": sum(v["flagged"] for v in res["pairs"].values()), "pairs": len(res["pairs"])})
    for key, res in group_json.items():
        out.append({"name": f"flagged groups by {key}", "value": len({f['group'] for f in res["flagged"]}),
                    "groups": len(res["groups"])})
    return out


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _ci(ci: Sequence[float] | None, digits: int = 1) -> str:
    return "–" if not ci or ci[0] is None else f"{_pct(ci[0], digits)} to {_pct(ci[1], digits)}"


def report_markdown(result: dict[str, Any]) -> str:
    """The human view: group tables, counterfactual pairs, template pairs, notes."""
    s = result["settings"]
    lines = [f"# Fairness audit ({result['task']})", "",
             f"Model `{result['model']['path']}`, data `{result['data']['path']}` ({result['examples']} examples). "
             f"Intervals: 95 % bootstrap over examples ({s['bootstrap']['resamples']} resamples, seed {s['seed']}); "
             f"groups under {s['min_group_size']} examples get no interval. Values in percent; a gap is flagged (⚑) "
             "when its interval excludes 0 (groups: only when worse off than the rest); with many pairs, about 1 in 20 "
             "intervals excludes 0 by chance alone.", ""]
    for key, res in result["group_metrics"].items():
        m = res["main_metric"]
        lines += [f"## Groups by {key}", "", f"| group | n | {m} (CI) | gap to rest (CI) | flagged metrics |", "|---|---|---|---|---|"]
        for g, e in res["groups"].items():
            v = e["metrics"][m]
            flagged = ", ".join(k for k, x in e["metrics"].items() if x.get("flagged")) or "–"
            ci = _ci(v.get("ci")) if "ci" in v else v.get("note", "–")
            lines.append(f"| {g} | {e['n']} | {_pct(v['value'])} ({ci}) | {_pct(v['gap_to_rest'])} "
                         f"({_ci(v.get('gap_ci'))}) | {flagged} |")
        if res["fairlearn"]:
            lines += ["", "Fairlearn MetricFrame, between-group difference (max - min) and ratio (min / max):", "",
                      "| metric | difference (CI) | ratio (CI) |", "|---|---|---|"]
            for metric, d in res["fairlearn"]["difference"].items():
                r = res["fairlearn"]["ratio"][metric]
                rci = "–" if not r["ci"] or r["ci"][0] is None else f"{r['ci'][0]:.3f} to {r['ci'][1]:.3f}"
                rval = "–" if r["value"] is None else f"{r['value']:.3f}"
                lines.append(f"| {metric} | {_pct(d['value'])} ({_ci(d['ci'])}) | {rval} ({rci}) |")
        if res["note"]:
            lines += ["", res["note"]]
        lines.append("")
    for title, block in (("Counterfactual swaps on the data", result["counterfactual"]),
                         ("Template suites", result["templates"])):
        for spec, res in block.items():
            lines += [f"## {title}: {spec} ({res['examples']} sentences, metric {res['metric']})", "",
                      "| group | value (CI) |", "|---|---|"]
            for g, v in res["groups"].items():
                val = v.get("mean_score", v.get("value"))
                lines.append(f"| {g} | {_pct(val)} ({_ci(v['ci'])}) |")
            lines += ["", "| pair (a vs b) | gap b - a (CI) | flip rate (CI) | |", "|---|---|---|---|"]
            for p, item in res["pairs"].items():
                flip = f"{_pct(item['flip_rate'])} ({_ci(item['flip_rate_ci'])})" if "flip_rate" in item else "–"
                lines.append(f"| {p} | {_pct(item['gap'], 2)} ({_ci(item['gap_ci'], 2)}) | {flip} | "
                             f"{'⚑' if item['flagged'] else ''} |")
            if res.get("names_least_found"):
                lines.append("Names found least often as persons: " + "; ".join(
                    f"{g}: " + ", ".join(f"{x['name']} {_pct(x['recall'])}" for x in v)
                    for g, v in res["names_least_found"].items()))
            for pol, sub in res.get("by_polarity", {}).items():
                pair, item = max(sub["pairs"].items(), key=lambda kv: abs(kv[1]["gap"]))
                lines.append(f"- {pol} words ({sub['examples']} sentences): largest gap {pair} {_pct(item['gap'], 2)} "
                             f"({_ci(item['gap_ci'], 2)}){' ⚑' if item['flagged'] else ''}")
            lines.append("")
    if result["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def plot_fairness(result: dict[str, Any], path: Path) -> None:
    """Horizontal bars: each gap with its interval (counterfactual pairs, groups vs rest), the
    largest 24, flagged ones in orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = []
    for where, block in (("", result["counterfactual"]), ("templates ", result["templates"])):
        for spec, res in block.items():
            for p, it in res["pairs"].items():
                items.append((f"{where}{spec}: {p}", it["gap"], it["gap_ci"], it["flagged"]))
    for key, res in result["group_metrics"].items():
        m = res["main_metric"]
        for g, e in res["groups"].items():
            v = e["metrics"][m]
            if v.get("gap_to_rest") is not None:
                items.append((f"{key}={g} ({m} vs rest)", v["gap_to_rest"], v.get("gap_ci"), v.get("flagged", False)))
    items = sorted(items, key=lambda x: -abs(x[1]))[:24][::-1]
    fig, ax = plt.subplots(figsize=(7.5, max(2.0, 0.32 * len(items) + 1.0)), dpi=120)
    if items:
        y = np.arange(len(items))
        vals = [100 * it[1] for it in items]
        err = [[100 * (it[1] - it[2][0]) if it[2] else 0 for it in items],
               [100 * (it[2][1] - it[1]) if it[2] else 0 for it in items]]
        ax.barh(y, vals, xerr=err, capsize=2, color=["#d9822b" if it[3] else "#9db4c8" for it in items])
        ax.set_yticks(y, [it[0] for it in items], fontsize=7)
        ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("gap (points; 95 % interval); orange: interval excludes 0")
    ax.set_title("Fairness gaps", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
