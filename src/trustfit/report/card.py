"""The model card's data: one object built only from measured files (the model folder's
trustfit.json, train_summary.json, dev_metrics.json, its audits/KIND/result.json, and the run's
evaluate/*.json), rendered three ways (README.md with Hugging Face metadata, card.html, card.json).
A section whose audit did not run says "not evaluated"; no number is ever made up."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from trustfit.encode.windows import context_description
from trustfit.errors import TrustfitError

SCHEMA_VERSION = 1
AUDIT_KINDS = ("robustness", "explain", "fairness", "privacy")
AUDIT_TITLES = {"robustness": "Robustness", "explain": "Explanations", "fairness": "Fairness", "privacy": "Privacy"}


def _read(p: Path) -> Any:
    return json.loads(p.read_text()) if p.exists() else None


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * float(x), 2)


def _ner_summary(m: dict) -> dict:
    ent = m["entity"]
    return {"metric": "entity F1 (strict IOB2, conlleval-equivalent)", "value": _pct(ent["micro"]["f1"]),
            "precision": _pct(ent["micro"]["precision"]), "recall": _pct(ent["micro"]["recall"]),
            "token_accuracy": _pct(m.get("token_accuracy")),
            "per_type": {t: {"f1": _pct(v["f1"]), "support": v["support"]} for t, v in ent.items()
                         if t not in ("micro", "macro", "weighted")}}


def _classify_summary(m: dict) -> dict:
    out = {"metric": "accuracy", "value": _pct(m["accuracy"]), "macro_f1": _pct(m["macro_f1"]),
           "per_class": {c: {"f1": _pct(v["f1"]), "support": v["support"]} for c, v in m["per_class"].items()}}
    if m.get("ece") is not None:
        out["ece"] = _pct(m["ece"])
    at = ((m.get("extra") or {}).get("coverage") or {}).get("at_precision")
    if at:  # the router's view: share answered automatically at a given precision
        out["answered_at_precision"] = {k: _pct(v["coverage"]) for k, v in at.items()}
    return out


def summarise_metrics(task: str, m: dict) -> dict:
    return _ner_summary(m) if task == "ner" else _classify_summary(m)


def build_card(model_dir: str | Path, run_dir: str | Path | None = None, exp=None) -> dict[str, Any]:
    """The card as plain data (what card.json holds)."""
    model_dir = Path(model_dir)
    meta = _read(model_dir / "trustfit.json")
    if meta is None:
        raise TrustfitError(f"{model_dir}: no trustfit.json; the card is built from a trustfit-trained model folder")
    task = meta.get("task", "ner")
    summary = _read(model_dir / "train_summary.json") or {}
    dev = _read(model_dir / "dev_metrics.json")
    cfg = meta.get("config", {})
    report = exp.report if exp is not None else None
    labels = meta.get("labels", [])
    card: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "title": (report.title if report and report.title else (exp.name if exp else model_dir.name)),
        "task": task, "pipeline_tag": "token-classification" if task == "ner" else "text-classification",
        "base_model": meta.get("base_model"), "model_dir": str(model_dir),
        "language": report.language if report else "en", "license": report.license if report else None,
        "intended_use": report.intended_use if report and report.intended_use else None,
        "out_of_scope": report.out_of_scope if report and report.out_of_scope else None,
        "dataset_name": (report.dataset_name if report and report.dataset_name else Path(meta.get("train_file") or "data").parent.name),
        "labels": labels,
        "entity_types": sorted({l[2:] for l in labels if l != "O"}) if task == "ner" else None,
    }
    card["training"] = {
        "train_file": meta.get("train_file"), "dev_file": meta.get("dev_file"),
        "train_has_documents": meta.get("train_has_documents"),  # None: not recorded (older runs, federated)
        "examples": summary.get("train_examples"), "words": summary.get("train_words"),
        "epochs_done": summary.get("epochs_done"), "steps": summary.get("steps"),
        "seconds": round(summary["train_seconds"], 1) if "train_seconds" in summary else None,
        "words_per_second": round(summary["words_per_second"]) if "words_per_second" in summary else None,
        "precision": summary.get("precision"), "device": summary.get("device"), "processes": summary.get("processes"),
        "hyperparameters": {k: cfg.get(k) for k in ("epochs", "batch_size", "lr", "layer_lr_decay", "weight_decay",
                                                     "warmup_ratio", "max_grad_norm", "seed", "context_tokens",
                                                     "context_share", "context_from_epoch", "pack", "pack_tokens",
                                                     "decode", "ema_decay", "class_weights", "calibrate")
                            if k in cfg and (k != "decode" or task == "ner")},
        "margins": summary.get("context_share"),  # what each epoch fed, when not every pack in every epoch
        "temperature": meta.get("temperature"),
        "differential_privacy": _dp_summary(meta.get("privacy")) or _client_dp_summary(meta.get("federated")),
        "federated": _federated_summary(meta.get("federated")),
    }
    card["dev"] = {"file": meta.get("dev_file"), **summarise_metrics(task, dev)} if dev else None
    evaluations = []
    if run_dir is not None:
        for p in sorted((Path(run_dir) / "evaluate").glob("*.json")):
            rec = json.loads(p.read_text())
            evaluations.append({"file": rec["file"], "sha256": rec["sha256"], **summarise_metrics(task, rec["metrics"])})
    card["evaluations"] = evaluations
    stages = (_read(Path(run_dir) / "pipeline.json") or {}).get("stages", {}) if run_dir else {}
    audits: dict[str, Any] = {}
    for kind in AUDIT_KINDS:
        res = _read(model_dir / "audits" / kind / "result.json")
        stage = stages.get(f"audit.{kind}", {})
        if stage.get("status") == "failed":
            audits[kind] = {"status": "failed", "error": stage.get("error")}
        elif res is not None:
            audits[kind] = {"status": "done", **_audit_summary(kind, res, model_dir / "audits" / kind)}
        else:
            audits[kind] = {"status": "not evaluated"}
    card["audits"] = audits
    card["history"] = [{k: h.get(k) for k in ("step", "epoch", "f1", "accuracy", "macro_f1") if k in h}
                       for h in summary.get("history", [])]
    card["limitations"] = limitations(card)
    return card


def _audit_summary(kind: str, res: dict, folder: Path) -> dict:
    out: dict[str, Any] = {"headline": res.get("headline", []), "data": res.get("data", {}).get("path"),
                           "plots": [str(folder / p) for p in res.get("plots", [])]}
    if kind == "explain":
        out["examples"] = res.get("examples")
        out["methods"] = {m: {"comprehensiveness": _r(v["comprehensiveness"]["mean"]),
                              "comprehensiveness_ci": [_r(x) for x in v["comprehensiveness"]["ci"] or []],
                              "sufficiency": _r(v["sufficiency"]["mean"]),
                              "stability_seed": _r(v["stability_seed"]["mean"]),
                              "stability_typo": _r(v["stability_typo"]["mean"]),
                              "ms_per_explanation": _r(v["ms_per_explanation"]["median"], 1)}
                          for m, v in res["methods"].items()}
        out["example_explanations"] = res.get("example_explanations", {})
    if kind == "robustness":
        out["metric"], out["examples"] = res.get("metric"), res.get("examples")
        out["families"] = {f: {"clean": _r(100 * v["clean"], 2), "perturbed": _r(100 * v["perturbed"]["value"], 2),
                               "perturbed_ci": [_r(100 * x, 2) for x in v["perturbed"]["ci"] or []],
                               "drop": _r(100 * v["perturbed"]["drop"], 2),
                               "attack_success": None if v["attack_success_rate"] is None
                               else _r(100 * v["attack_success_rate"], 1),
                               "constraints": "; ".join(f"{k}: {c}" for k, c in v["constraints"].items())}
                           for f, v in res["families"].items()}
    if kind == "fairness":
        out["examples"] = res.get("examples")
        out["swaps"] = [{"list": h["list"], "where": h["where"], "sentences": h["sentences"], "metric": h["metric"],
                         "pair": h["pair"], "gap": _r(100 * h["value"], 2), "gap_ci": [_r(100 * x, 2) for x in h["ci"] or []],
                         "flip_rate": None if h["flip_rate"] is None else _r(100 * h["flip_rate"], 2),
                         "flagged_pairs": h["flagged_pairs"], "pairs": h["pairs"]}
                        for h in res.get("headline", []) if "list" in h]  # the largest gap of each list
        out["groupings"] = [{"by": key, "groups": len(g["groups"]), "metric": g["main_metric"],
                             "flagged": sorted({f["group"] for f in g["flagged"]}), "note": g.get("note")}
                            for key, g in res.get("group_metrics", {}).items()]
    if kind == "privacy":
        m = res["membership"]
        out["members"], out["shift_note"] = m["members"], m.get("shift_note")
        out["attacks"] = {name: {"auc": _r(a["auc"]), "auc_ci": [_r(x) for x in a["auc_ci"]],
                                 "tpr_1pct": _r(100 * a["tpr_at_1pct_fpr"], 2),
                                 "tpr_01pct": _r(100 * a["tpr_at_0.1pct_fpr"], 2)} for name, a in m["attacks"].items()}
        c = res.get("canaries")
        out["canaries"] = None if not c else {
            "count": len(c["results"]), "repeats": c["repeats"],
            "max_exposure": _r(max(r["exposure"] for r in c["results"]), 2),
            "exposure_max": _r(c["results"][0]["exposure_max"], 2)}
    return out


def _dp_summary(p: dict | None) -> str | None:
    """One line on the DP guarantee recorded in trustfit.json (None when trained without DP)."""
    if not p:
        return None
    return (f"epsilon {p['epsilon']:.2f} at delta {p['delta']:g} ({p['accountant']} accountant; noise multiplier "
            f"{p['noise_multiplier']:.3f}, {p['sampling']} sampling at rate {p['sample_rate']:.4f}, {p['steps']} steps, "
            f"per-example clipping at {p['max_grad_norm']:g}; trained: {p['trained']}; privacy unit: "
            f"{p['privacy_unit']})")


def _federated_summary(f: dict | None) -> str | None:
    """One line on how a federated model was trained (None for central training)."""
    if not f:
        return None
    ev = f.get("central_eval") or {}
    score = f"; server dev F1 {100 * ev['f1']:.2f}" if "f1" in ev else ""
    mb = sum(f["bytes_per_round"]) / max(1, len(f["bytes_per_round"])) / 1e6
    return (f"{f['strategy']} over {f['rounds']} rounds of {f['local_epochs']} local epoch(s), {f['clients']} clients "
            f"({f['mode']}{', partition ' + f['partition'] if f.get('partition') else ''}), "
            f"{f['rounds_aggregated']} rounds aggregated, {f['failures']} client failures, shared parameters: "
            f"{f['federate_params']} ({f['shared_parameters']:,}), {mb:.1f} MB per round{score}")


def _client_dp_summary(f: dict | None) -> str | None:
    """Client-level DP-SGD of a federated model: the largest epsilon any client spent."""
    clients = (f or {}).get("client_privacy")
    if not clients:
        return None
    worst = max(clients.values(), key=lambda p: p["epsilon"])
    return (f"client-side DP-SGD, epsilon up to {worst['epsilon']:.2f} at delta {worst['delta']:g} per client over all "
            f"its rounds ({worst['accountant']} accountant, {len(clients)} clients; each client's own epsilon is in "
            "trustfit.json; privacy unit: one training example of a client)")


def _r(x, digits: int = 3):
    return None if x is None else round(float(x), digits)


def _margin_schedule(hp: dict, fed: dict | None = None) -> str:
    """When a run fed its document-context margins only late or on a share of the packs, in words
    ('' when every pack had them in every epoch, or the run predates the settings); `fed` is the
    run's record of it (train_summary's context_share: with --max-steps the epochs run are not
    --epochs), else the settings say."""
    from trustfit.train.margins import first_margin_epoch

    if not hp.get("context_tokens"):
        return ""
    if fed:
        epochs, start, share = 1 + max(int(e) for e in fed["epochs"]), fed["from_epoch"], fed["share"]
    else:
        epochs = hp.get("epochs") or 1
        start = first_margin_epoch(hp.get("context_from_epoch") or 0, epochs)
        share = hp.get("context_share", 1.0)
    when = ("" if start == 0 else f" in the last of its {epochs} epochs" if start == epochs - 1
            else f" from epoch {start + 1} of {epochs}")
    which = f" on {share:.0%} of the packs" if share < 1 else ""
    return f" (the margins{which}{when})" if when or which else ""


def limitations(card: dict) -> list[str]:
    """Sentences, each with its number, written from the measured gaps."""
    out: list[str] = []
    tr, dev, task = card["training"], card["dev"], card["task"]
    if tr.get("examples"):
        out.append(f"Trained on {tr['examples']:,} {'sentences' if task == 'ner' else 'examples'} from "
                   f"{Path(tr['train_file'] or '?').name} for {tr.get('epochs_done') or '?'} epoch(s); text from other "
                   "domains, periods or languages was not evaluated.")
    if dev:
        per = dev.get("per_type") or dev.get("per_class") or {}
        scored = {k: v["f1"] for k, v in per.items() if v.get("f1") is not None}
        worst, best = (min(scored, key=scored.get), max(scored, key=scored.get)) if scored else (None, None)
        if len(scored) > 1 and scored[best] - scored[worst] >= 1:
            what = "entities" if task == "ner" else "examples"
            out.append(f"{worst} {what} are recognised with F1 {scored[worst]:.2f} on dev, "
                       f"{scored[best] - scored[worst]:.2f} points below {best} ({scored[best]:.2f}).")
        if dev.get("ece") is not None:
            out.append(f"Probabilities are off by {dev['ece']:.2f} points on average on dev (expected calibration error).")
        for ev in card["evaluations"]:
            gap = dev["value"] - ev["value"]
            if abs(gap) >= 1:
                out.append(f"On {Path(ev['file']).name} the {dev['metric'].split(' (')[0]} is {ev['value']:.2f}, "
                           f"{abs(gap):.2f} points {'below' if gap > 0 else 'above'} dev.")
    else:
        out.append("No dev file was given: the model's accuracy was not measured during training.")
    hp = tr["hyperparameters"]
    seen = (context_description(bool(hp.get("pack")), hp.get("context_tokens") or 0, hp.get("pack_tokens"))
            if task == "ner" else None)
    if seen and tr.get("train_has_documents") is False:
        out.append(f"The training file marks no documents (-DOCSTART-): each sentence was trained alone, without "
                   f"the document context its settings name ({seen}).")
    elif seen:
        out.append(f"Trained seeing {seen}{_margin_schedule(hp, tr.get('margins'))}; plain-text input (one sentence a line, the "
                   "server) has no document context.")
    ex = card["audits"].get("explain", {})
    if ex.get("status") == "done":
        methods = ex["methods"]
        floor = (methods.get("random") or {}).get("comprehensiveness")
        for m, v in methods.items():
            if m != "random" and floor is not None and v["comprehensiveness"] is not None and v["comprehensiveness"] <= floor:
                out.append(f"Explanations by {m} were no more faithful than random scores here "
                           f"(comprehensiveness {v['comprehensiveness']:.3f} vs {floor:.3f}).")
    rob = card["audits"].get("robustness", {})
    if rob.get("status") == "done":
        for f, v in rob["families"].items():
            if v["drop"] is not None and v["drop"] >= 2:
                out.append(f"Under {f} perturbations the {rob['metric']} falls from {v['clean']:.2f} to "
                           f"{v['perturbed']:.2f} ({v['drop']:.2f} points; constraints in the robustness audit).")
    fair = card["audits"].get("fairness", {})
    if fair.get("status") == "done":
        for sw in fair["swaps"]:
            if sw["flagged_pairs"] and sw["gap"] is not None and abs(sw["gap"]) >= 1:
                out.append(f"Swapping {sw['list']} terms ({sw['where']}, {sw['sentences']} sentences) changes "
                           f"{sw['metric']} by {sw['gap']:.2f} points for {sw['pair']} (95 % interval "
                           f"{sw['gap_ci'][0]:.2f} to {sw['gap_ci'][1]:.2f}); {sw['flagged_pairs']} of {sw['pairs']} "
                           "group pairs differ beyond doubt.")
        for g in fair["groupings"]:
            if g["flagged"]:
                out.append(f"Grouped by {g['by']}, these groups are worse off than the rest beyond doubt: "
                           f"{', '.join(g['flagged'])} (details in the fairness audit).")
    priv = card["audits"].get("privacy", {})
    if priv.get("status") == "done":
        for name, a in priv["attacks"].items():
            if a["auc_ci"][0] > 0.55:
                out.append(f"A membership-inference attack ({name}) tells training examples from unseen ones with "
                           f"ROC AUC {a['auc']:.3f} (95 % interval {a['auc_ci'][0]:.3f} to {a['auc_ci'][1]:.3f}; "
                           f"{a['tpr_1pct']:.2f} % of members found at 1 % false positives).")
        if priv.get("canaries") and priv["canaries"]["max_exposure"] >= 0.5 * priv["canaries"]["exposure_max"]:
            out.append(f"A planted canary reached {priv['canaries']['max_exposure']:.2f} bits of exposure (of "
                       f"{priv['canaries']['exposure_max']:.2f} measurable): the model memorises repeated secrets.")
    for kind, a in card["audits"].items():
        if a["status"] == "not evaluated":
            out.append({"robustness": "Robustness to typos, casing, entity swaps and adversarial edits was not evaluated.",
                        "fairness": "Differences between groups of people (gender, origin, religion) were not evaluated.",
                        "privacy": "Privacy risk (membership inference, memorised training text) was not evaluated.",
                        "explain": "The faithfulness of explanations was not evaluated."}[kind])
        elif a["status"] == "failed":
            out.append(f"The {kind} audit failed ({(a.get('error') or '').splitlines()[0][:200]}); its results are missing.")
    if not tr.get("differential_privacy"):
        n = f"{tr['examples']:,} " if tr.get("examples") else ""
        out.append(f"Trained without differential privacy: the weights carry no formal bound (epsilon is infinite) on "
                   f"what they reveal about any of the {n}training examples.")
    return out


def write_card(run_or_model_dir: str | Path, exp=None, out: str | Path | None = None) -> dict[str, Path]:
    """Build and write README.md, card.html and card.json (+ plots/) into OUT (RUN/card for a run
    folder, MODEL/card for a model folder); README.md and card.json are copied next to the model,
    where hubs and the server look for them."""
    d = Path(run_or_model_dir)
    if (d / "pipeline.json").exists() or (d / "model" / "trustfit.json").exists():
        run_dir, model_dir = d, d / "model"
    elif (d / "trustfit.json").exists():
        run_dir, model_dir = None, d
    else:
        raise TrustfitError(f"{d}: neither a run folder (pipeline.json, model/) nor a trustfit model folder "
                            "(trustfit.json)")
    if exp is None and run_dir is not None and (run_dir / "pipeline.json").exists():
        src = json.loads((run_dir / "pipeline.json").read_text()).get("experiment")
        if src and Path(src).exists():
            from trustfit.report.experiment import load_experiment

            exp = load_experiment(src)
    out = Path(out) if out else (run_dir or model_dir) / "card"
    out.mkdir(parents=True, exist_ok=True)
    card = build_card(model_dir, run_dir, exp)
    from trustfit.report.render import make_plots, render_html, render_markdown

    card["plots"] = make_plots(card, model_dir, out)
    md = render_markdown(card)
    (out / "README.md").write_text(md, encoding="utf-8")
    (out / "card.html").write_text(render_html(card, out), encoding="utf-8")
    for a in card["audits"].values():  # rendered into card.html above; card.json keeps the numbers
        a.pop("example_explanations", None)
    (out / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False))
    (model_dir / "README.md").write_text(md, encoding="utf-8")
    (model_dir / "card.json").write_text((out / "card.json").read_text(encoding="utf-8"), encoding="utf-8")
    return {"markdown": out / "README.md", "html": out / "card.html", "json": out / "card.json"}
