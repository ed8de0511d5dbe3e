"""`trustfit audit explain`: every method explains the same N predictions (classes, or NER
entity spans) and is scored on faithfulness (comprehensiveness, sufficiency), stability (two
seeds; one typo elsewhere) and cost (forward passes, ms per explanation), each with a seeded
bootstrap interval. Output per the audit convention: result.json, report.md, faithfulness.png,
and examples.html with one highlighted explanation per method."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from trustfit.auditing import audit_header, bootstrap_ci, write_audit
from trustfit.explain import check_method, make_explainer
from trustfit.explain.base import Attribution, Target, Text
from trustfit.explain.faithfulness import FRACTIONS, faithfulness, spearman, typo_variant
from trustfit.explain.model import ExplainableModel, ExplainError
from trustfit.explain.render import METHOD_NAMES, attribution_html, html_page

SCHEMA_VERSION = 1
DEFAULT_METHODS = ("ig", "gxi", "shap", "lime", "random")


@dataclass
class MethodScores:
    """Per-explanation numbers of one method, before aggregation."""

    comprehensiveness: list[float] = field(default_factory=list)
    sufficiency: list[float] = field(default_factory=list)
    stability_seed: list[float] = field(default_factory=list)
    stability_typo: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    passes: list[int] = field(default_factory=list)
    completeness_gap: list[float] = field(default_factory=list)
    typo_unmeasurable: int = 0
    stochastic: bool = False
    errors: list[str] = field(default_factory=list)
    example: Attribution | None = None


def load_examples(model: ExplainableModel, data: str, n: int, seed: int = 0, text_column: str | None = None,
                  format: str = "auto", encoding: str | None = None) -> list[tuple[Text, Target]]:
    """N (text, target) pairs from a data file, in a seeded random order of its rows: for NER each
    predicted entity of a sentence (CoNLL file; sentences explained without document context, as
    `trustfit predict` sees plain text); for classification each text's predicted class."""
    rng = np.random.default_rng(seed)
    out: list[tuple[Text, Target]] = []
    if model.task == "ner":
        from trustfit.data.conll import read_conll

        corpus = read_conll(data, tag_column=None, encoding=encoding or "utf-8")
        texts = [Text.from_words(s.tokens) for s in corpus.sentences if len(s.tokens) >= 2]
    else:
        from trustfit.data.text import read_text_corpus

        corpus = read_text_corpus(data, format=format, text_column=text_column or "text", label_column=None,
                                  encoding=encoding)
        texts = [Text.from_string(e.text) for e in corpus.examples]
        texts = [t for t in texts if len(t) >= 2]
    for i in rng.permutation(len(texts)):
        for target in model.targets(texts[i]):
            out.append((texts[i], target))
            if len(out) >= n:
                return out
    if not out:
        what = "entities" if model.task == "ner" else "texts of two or more words"
        raise ExplainError(f"{data}: the model found no {what} to explain")
    return out


def score_method(model: ExplainableModel, name: str, examples: Sequence[tuple[Text, Target]], seed: int,
                 samples: int | None, progress: Callable[[], None] | None = None) -> MethodScores:
    """Explain every example with one method and measure it."""
    explainer = make_explainer(name, model, samples=samples, seed=seed)
    res = MethodScores(stochastic=explainer.stochastic)
    reseeded = make_explainer(name, model, samples=samples, seed=seed + 1) if explainer.stochastic else None
    rng = np.random.default_rng(seed)
    for text, target in examples:
        try:
            a = explainer.explain(text, target)
        except ExplainError as e:
            res.errors.append(f"{text.text[:60]!r}: {e}")
            if progress:
                progress()
            continue
        res.ms.append(1000 * a.seconds)
        res.passes.append(a.forward_passes)
        if "relative_completeness_gap" in a.extra:
            res.completeness_gap.append(a.extra["relative_completeness_gap"])
        f = faithfulness(model, text, target, a.scores)
        res.comprehensiveness.append(f.comprehensiveness)
        res.sufficiency.append(f.sufficiency)
        if reseeded is not None:
            s = spearman(a.scores, reseeded.explain(text, target).scores)
            if s is not None:
                res.stability_seed.append(s)
        variant = typo_variant(text, target, rng)
        if variant is None:
            res.typo_unmeasurable += 1
        else:
            vtext, changed = variant
            b = explainer.explain(vtext, target)
            keep = [i for i in range(len(text)) if i != changed]
            s = spearman([a.scores[i] for i in keep], [b.scores[i] for i in keep])
            if s is not None:
                res.stability_typo.append(s)
            else:
                res.typo_unmeasurable += 1
        if res.example is None:
            res.example = a
        if progress:
            progress()
    return res


def run_explain_audit(model_dir: str, data: str, out: str | Path, methods: Sequence[str] = DEFAULT_METHODS,
                      n: int = 200, seed: int = 0, samples: int | None = None, resamples: int = 1000,
                      text_column: str | None = None, format: str = "auto", encoding: str | None = None,
                      quiet: bool = False) -> dict[str, Any]:
    """Run the audit and write result.json, report.md, faithfulness.png and examples.html."""
    from trustfit.explain.model import load_explainable
    from trustfit.models.backbone import read_meta, resolve_model_source

    methods = [check_method(m) for m in methods]
    if n < 1:
        raise ExplainError(f"--n must be at least 1, got {n}")
    model = load_explainable(model_dir)
    meta = read_meta(resolve_model_source(model_dir))
    t0 = time.perf_counter()
    examples = load_examples(model, data, n, seed, text_column or meta.get("text_column"), format, encoding)
    per: dict[str, MethodScores] = {}
    timings: dict[str, float] = {"load_and_predict_s": round(time.perf_counter() - t0, 3)}
    from rich.progress import Progress

    with Progress(disable=quiet, transient=True) as bar:
        for name in methods:
            task = bar.add_task(f"explain audit: {name}", total=len(examples))
            t1 = time.perf_counter()
            per[name] = score_method(model, name, examples, seed, samples, lambda: bar.advance(task))
            timings[f"{name}_s"] = round(time.perf_counter() - t1, 3)
    ci = dict(resamples=resamples, seed=seed)
    method_json: dict[str, Any] = {}
    for name, r in per.items():
        mj: dict[str, Any] = {
            "explained": len(r.ms), "failed": len(r.errors), "errors": r.errors[:10],
            "comprehensiveness": bootstrap_ci(r.comprehensiveness, **ci),
            "sufficiency": bootstrap_ci(r.sufficiency, **ci),
            "stability_seed": (bootstrap_ci(r.stability_seed, **ci) if r.stochastic
                               else {"mean": 1.0, "n": len(r.ms), "ci": None, "note": "deterministic method"}),
            "stability_typo": {**bootstrap_ci(r.stability_typo, **ci), "unmeasurable": r.typo_unmeasurable},
            "ms_per_explanation": {**bootstrap_ci(r.ms, **ci), "median": float(np.median(r.ms)) if r.ms else None},
            "forward_passes": {"mean": float(np.mean(r.passes)) if r.passes else None},
        }
        if r.completeness_gap:
            mj["relative_completeness_gap"] = bootstrap_ci(r.completeness_gap, **ci)
        method_json[name] = mj
    real = {k: v for k, v in method_json.items() if k != "random" and v["comprehensiveness"]["mean"] is not None}
    headline = []
    if real:
        best = max(real, key=lambda k: real[k]["comprehensiveness"]["mean"])
        b = real[best]
        headline.append({"name": "most faithful method", "value": best,
                         "comprehensiveness": b["comprehensiveness"]["mean"],
                         "ms_per_explanation": b["ms_per_explanation"]["median"]})
        if "random" in method_json and method_json["random"]["comprehensiveness"]["mean"] is not None:
            headline.append({"name": "comprehensiveness of random scores (floor)",
                             "value": method_json["random"]["comprehensiveness"]["mean"]})
    settings = {"methods": methods, "n": n, "seed": seed, "samples": samples, "fractions": list(FRACTIONS),
                "removal": "words replaced by the mask token", "bootstrap": ci,
                "explained_value": ("class probability (with the model's temperature)" if model.task == "classify"
                                    else "summed log-probability of the span's tags; faithfulness on its exponent"),
                "precision": model.precision}
    result = audit_header("explain", SCHEMA_VERSION, model_dir, data, settings)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_faithfulness(method_json, out / "faithfulness.png")
    snippets = [attribution_html(r.example) for r in per.values() if r.example is not None]
    (out / "examples.html").write_text(html_page(snippets, "trustfit: one explanation per method"), encoding="utf-8")
    result.update(task=model.task, examples=len(examples), methods=method_json, headline=headline,
                  timings={**timings, "total_s": round(time.perf_counter() - t0, 3)},
                  plots=["faithfulness.png"], html=["examples.html"],
                  example_explanations={k: r.example.to_json() for k, r in per.items() if r.example is not None})
    write_audit(out, result, report_markdown(result))
    return result


def _fmt(m: dict[str, Any], digits: int = 3) -> str:
    if m.get("mean") is None:
        return "n/a"
    s = f"{m['mean']:.{digits}f}"
    if m.get("ci"):
        s += f" [{m['ci'][0]:.{digits}f}, {m['ci'][1]:.{digits}f}]"
    elif m.get("note"):
        s += f" ({m['note']})"
    return s


def report_markdown(result: dict[str, Any]) -> str:
    lines = [f"# Explanation audit ({result['task']})", "",
             f"Model `{result['model']['path']}`, data `{result.get('data', {}).get('path')}`, "
             f"{result['examples']} explained predictions, seed {result['settings']['seed']}. "
             f"Explained value: {result['settings']['explained_value']}. Means with 95 % bootstrap intervals.", "",
             "| method | comprehensiveness (higher is better) | sufficiency (lower is better) | stability, 2 seeds | "
             "stability, 1 typo | ms / explanation (median) | forward passes |",
             "|---|---|---|---|---|---|---|"]
    for name, m in result["methods"].items():
        lines.append(f"| {name} | {_fmt(m['comprehensiveness'])} | {_fmt(m['sufficiency'])} | "
                     f"{_fmt(m['stability_seed'])} | {_fmt(m['stability_typo'])} | "
                     f"{m['ms_per_explanation']['median']:.1f} | {m['forward_passes']['mean']:.0f} |"
                     if m["ms_per_explanation"]["median"] is not None else f"| {name} | failed: {m['errors'][:1]} |")
    gaps = {k: m["relative_completeness_gap"] for k, m in result["methods"].items() if "relative_completeness_gap" in m}
    for k, g in gaps.items():
        lines += ["", f"{k}: relative completeness gap |sum of scores - (f(x) - f(baseline))| / |f(x) - f(baseline)| "
                      f"= {_fmt(g)}."]
    failed = {k: m["failed"] for k, m in result["methods"].items() if m["failed"]}
    if failed:
        lines += ["", "Explanations that failed: " + ", ".join(f"{k} {v}" for k, v in failed.items())]
    lines += ["", "![faithfulness](faithfulness.png)", "", "One highlighted explanation per method: examples.html", ""]
    return "\n".join(lines)


def plot_faithfulness(methods: dict[str, Any], path: Path) -> None:
    """Comprehensiveness and sufficiency per method with their intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k, m in methods.items() if m["comprehensiveness"]["mean"] is not None]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key, title in ((axes[0], "comprehensiveness", "comprehensiveness (higher is better)"),
                           (axes[1], "sufficiency", "sufficiency (lower is better)")):
        means = [methods[k][key]["mean"] for k in names]
        errs = [[m - (methods[k][key]["ci"] or [m, m])[0] for k, m in zip(names, means)],
                [(methods[k][key]["ci"] or [m, m])[1] - m for k, m in zip(names, means)]]
        ax.bar(names, means, yerr=errs, capsize=3, color=["#9ca3af" if k == "random" else "#2563eb" for k in names])
        ax.set_title(title, fontsize=9)
        ax.axhline(0, color="#111827", linewidth=0.6)
    fig.suptitle(", ".join(f"{k}: {METHOD_NAMES.get(k, k)}" for k in names), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
