"""The human views of a privacy result: the headline a card shows first and report.md."""

from __future__ import annotations

from typing import Any


def headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Membership AUC and TPR at 1 % FPR per attack, the highest canary exposure, and epsilon."""
    out: list[dict[str, Any]] = []
    for name, a in result["membership"]["attacks"].items():
        out.append({"name": f"membership AUC, {name}", "value": round(a["auc"], 4), "ci": a["auc_ci"],
                    "tpr_at_1pct_fpr": round(a["tpr_at_1pct_fpr"], 4), "attack": name})
    if result.get("canaries"):
        top = max(result["canaries"]["results"], key=lambda c: c["exposure"])
        out.append({"name": "highest canary exposure (bits)", "value": round(top["exposure"], 2),
                    "max": round(top["exposure_max"], 2), "fit": round(top["exposure_fit"], 2),
                    "canaries": len(result["canaries"]["results"]), "repeats": result["canaries"]["repeats"]})
    p = result["training_privacy"]
    if p.get("epsilon") is not None:
        out.append({"name": "DP epsilon", "value": round(p["epsilon"], 3), "delta": p["delta"],
                    "accountant": p["accountant"]})
    else:
        out.append({"name": "DP epsilon", "value": None, "note": "trained without differential privacy"})
    return out


def _f(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def report_markdown(result: dict[str, Any]) -> str:
    """Attack table, canary table and the DP settings behind the model."""
    m, d = result["membership"], result["data"]
    lines = [f"# Privacy audit: {result['model']['path']}", "",
             f"Members: {m['members']} examples drawn from `{d['train']['path']}`; non-members: {m['non_members']} "
             f"from `{d['holdout']['path']}` ({d['holdout']['overlap_removed']} holdout examples also in the "
             "training file were removed). Scores are per-example losses, each example scored alone.", "",
             "## Membership inference", "",
             "| attack | ROC AUC | 95 % interval | TPR at 1 % FPR | TPR at 0.1 % FPR |", "|---|---|---|---|---|"]
    for name, a in m["attacks"].items():
        lines.append(f"| {name} | {a['auc']:.3f} | {a['auc_ci'][0]:.3f} to {a['auc_ci'][1]:.3f} | "
                     f"{100 * a['tpr_at_1pct_fpr']:.2f} % | {100 * a['tpr_at_0.1pct_fpr']:.2f} % |")
    lines += ["", "AUC 0.5 is chance: the attacker cannot tell training examples from others. "
              "![ROC](roc.png)", ""]
    notes = {a["note"] for a in m["attacks"].values() if a.get("note")}
    lines += [f"- {n}" for n in sorted(notes)]
    if m.get("shift_note"):
        lines.append(f"- **Distribution shift:** {m['shift_note']}.")
    ref = m["reference"]
    if ref.get("used"):
        lines += [f"- Reference model: {ref['how']} ({ref['path']})."]
    c = result.get("canaries")
    if c:
        lines += ["", "## Canaries", "", f"Template `{c['template']}`, each inserted {c['repeats']} time(s). Exposure "
                  "= log2(candidates + 1) - log2(rank); the fit extrapolates beyond the candidate count.", "",
                  "| secret | label | rank | candidates | exposure (bits) | max | fitted exposure |",
                  "|---|---|---|---|---|---|---|"]
        for r in c["results"]:
            lines.append(f"| {r['secret']} | {r['label']} | {r['rank']} | {r['candidates']} | {r['exposure']:.2f} | "
                         f"{r['exposure_max']:.2f} | {r['exposure_fit']:.2f} |")
    p = result["training_privacy"]
    lines += ["", "## Training privacy", ""]
    if p.get("epsilon") is None:
        lines.append("Trained without differential privacy.")
    else:
        lines += [f"- epsilon {p['epsilon']:.3f} at delta {p['delta']:g} ({p['accountant']} accountant)",
                  f"- noise multiplier {p['noise_multiplier']:.4f}, sample rate {p['sample_rate']:.5f} "
                  f"({p['sampling']} sampling, expected batch {p['expected_batch_size']}), {p['steps']} steps",
                  f"- clipping: {p['clipping']}, norm {p['max_grad_norm']:g}; trained: {p['trained']} "
                  f"({p['trained_parameters']:,} parameters); privacy unit: {p['privacy_unit']}"]
    return "\n".join(lines) + "\n"
