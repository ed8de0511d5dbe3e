"""The model card rendered: PNG plots, README.md with Hugging Face metadata, and card.html
(plots inlined, example explanations as coloured words), from the data card.py builds."""

from __future__ import annotations

import base64
from pathlib import Path

from trustfit.report.card import AUDIT_TITLES


def make_plots(card: dict, model_dir: Path, out: Path) -> dict[str, str]:
    """PNG files for the card; returns name -> path (relative to `out`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots: dict[str, str] = {}
    (out / "plots").mkdir(parents=True, exist_ok=True)
    key = "f1" if card["task"] == "ner" else "accuracy"
    hist = [h for h in card["history"] if h.get(key) is not None]
    if hist:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([h["step"] for h in hist], [100 * h[key] for h in hist], marker="o")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"dev {'entity F1' if key == 'f1' else 'accuracy'} (%)")
        ax.set_title("learning curve", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "plots/learning_curve.png", dpi=100)
        plt.close(fig)
        plots["learning_curve"] = "plots/learning_curve.png"
    dev = card["dev"]
    per = (dev or {}).get("per_type") or (dev or {}).get("per_class")
    if per:
        names = list(per)
        fig, ax = plt.subplots(figsize=(5, max(2.0, 0.35 * len(names) + 1)))
        ax.barh(names, [per[n]["f1"] for n in names], color="#2563eb")
        ax.set_xlabel("dev F1 (%)")
        ax.set_xlim(0, 100)
        ax.set_title("F1 per " + ("entity type" if card["task"] == "ner" else "class"), fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "plots/per_label_f1.png", dpi=100)
        plt.close(fig)
        plots["per_label_f1"] = "plots/per_label_f1.png"
    for name in ("confusion_matrix.png", "reliability.png", "federated_rounds.png"):
        if (model_dir / name).exists():
            (out / "plots" / name).write_bytes((model_dir / name).read_bytes())
            plots[name.split(".")[0]] = f"plots/{name}"
    for kind, a in card["audits"].items():
        for p in a.get("plots", []) if a["status"] == "done" else []:
            dst = out / "plots" / f"{kind}_{Path(p).name}"
            dst.write_bytes(Path(p).read_bytes())
            plots[f"{kind}_{Path(p).stem}"] = f"plots/{dst.name}"
    return plots


def _model_index(card: dict) -> list[dict]:
    results = []
    task_type = {"type": card["pipeline_tag"], "name": "Named-entity recognition" if card["task"] == "ner"
                 else "Text classification"}
    for split, m in ([("dev", card["dev"])] if card["dev"] else []) + [("evaluation", e) for e in card["evaluations"]]:
        mtype = "f1" if card["task"] == "ner" else "accuracy"
        results.append({"task": task_type,
                        "dataset": {"type": card["dataset_name"], "name": Path(m["file"] or "data").name, "split": split},
                        "metrics": [{"type": mtype, "value": m["value"], "name": m["metric"]}]})
    return [{"name": card["title"], "results": results}]


def render_markdown(card: dict) -> str:
    import yaml

    from trustfit.report.templates import env

    meta = {"language": card["language"], "library_name": "transformers", "pipeline_tag": card["pipeline_tag"],
            "tags": ["trustfit", card["task"]], "model-index": _model_index(card)}
    if card.get("license"):
        meta["license"] = card["license"]
    if card.get("base_model") and not str(card["base_model"]).startswith("sentence-transformers/all-MiniLM-L6-v2 ("):
        meta["base_model"] = card["base_model"]
    elif card.get("base_model"):
        meta["base_model"] = "sentence-transformers/all-MiniLM-L6-v2"
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return "---\n" + front + "---\n\n" + env().get_template("card.md.j2").render(card=card, titles=AUDIT_TITLES)


def render_html(card: dict, out: Path) -> str:
    from trustfit.explain.base import Attribution, Target
    from trustfit.explain.render import attribution_html
    from trustfit.report.templates import env

    images = {k: "data:image/png;base64," + base64.b64encode((out / p).read_bytes()).decode()
              for k, p in card.get("plots", {}).items()}
    snippets = []
    ex = card["audits"].get("explain", {})
    for a in (ex.get("example_explanations") or {}).values():
        t = a["target"]
        target = Target(t["task"], t["label"], t.get("class_index"), t.get("start"), t.get("end"),
                        tuple(t["tag_ids"]) if t.get("tag_ids") else None, t.get("probability"))
        snippets.append(attribution_html(Attribution(a["words"], a["scores"], target, a["method"], a["settings"],
                                                     a["forward_passes"], a["seconds"], a["text"],
                                                     [tuple(o) for o in a["offsets"]])))
    return env().get_template("card.html.j2").render(card=card, images=images, snippets=snippets, titles=AUDIT_TITLES)
