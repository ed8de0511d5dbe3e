"""`trustfit audit fairness`: group metrics with intervals, counterfactual identity swaps on
real sentences, and self-generated template suites, for classification and NER.

- Group metrics: per group (a sensitive-attribute column of the data, or the group whose terms
  a sentence mentions) accuracy, macro-F1, selection rate, false-positive and false-negative
  rates of one positive label (classification) or entity precision / recall / F1 per type
  (NER), each with a seeded bootstrap interval and its gap to the rest of the data; Fairlearn's
  MetricFrame for the between-group differences and ratios (with intervals from the same
  resampling); the intersection of two or more attributes as groups of their own. Groups smaller than
  `min_group_size` get their values and a note, never an interval.
- Counterfactual swaps: every sentence with a swappable term (or, for NER, a person) is
  rewritten once per group; per group pair the flip rate and the mean gap in the positive
  label's probability (classification) or in recall (NER: PER recall for names), each with a
  paired bootstrap interval over sentences. A pair is flagged when the gap's interval excludes 0.
- Templates: the same counterfactual measurement on suites from `templates.py`.

Output per the audit convention: result.json, report.md, fairness.png. This module runs the
steps; `data.py` holds what each task scores, `report.py` the human views."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trustfit.auditing import audit_header, write_audit
from trustfit.fairness.data import ClassifyData, FairnessError, NerData
from trustfit.fairness.report import headline, plot_fairness, report_markdown
from trustfit.fairness.swaps import example_group, make_swapper

SCHEMA_VERSION = 1
DEFAULT_SWAPS = ("gender", "names", "religion", "nationality")

__all__ = ["DEFAULT_SWAPS", "FairnessError", "run_fairness_audit"]


def run_fairness_audit(model_dir: str, data: str, out: str | Path, group_columns: Sequence[str] = (),
                       group_terms: Sequence[str] = (), swaps: Sequence[str] | None = None, templates: bool = False,
                       seed: int = 0, resamples: int = 1000, min_group_size: int = 30,
                       positive_label: str | None = None, text_column: str | None = None, format: str = "auto",
                       limit: int | None = None, batch_size: int = 64, quiet: bool = False) -> dict[str, Any]:
    """Audit the model in `model_dir` on `data`; write and return the result."""
    from trustfit.models.backbone import model_task, read_meta, resolve_model_source

    t_start = time.perf_counter()
    task = model_task(model_dir)
    meta = read_meta(resolve_model_source(model_dir))
    swaps = list(DEFAULT_SWAPS if swaps is None else swaps)
    swappers = {sw.name: sw for sw in map(make_swapper, swaps)}  # keyed by list name (a file's stem)
    term_groupers = {sw.name: sw for sw in map(make_swapper, group_terms)}
    run = (NerData if task == "ner" else ClassifyData)(model_dir, data, meta, batch_size=batch_size,
                                                        text_column=text_column, format=format, limit=limit,
                                                        positive_label=positive_label)
    notes: list[str] = []
    stages = len(group_columns) + len(term_groupers) + len(swappers) * (2 if templates else 1)
    bar = _progress(stages, quiet)
    # ---- group metrics
    sources: dict[str, np.ndarray] = {}
    for col in group_columns:
        sources[col] = run.column(col)
    for name, sw in term_groupers.items():
        sources[f"terms:{name}"] = np.array([example_group(e, sw) for e in run.examples], dtype=object)
    group_json: dict[str, Any] = {}
    for key, groups in sources.items():
        bar.set_description(f"groups by {key}")
        group_json[key] = run.group_metrics(groups, resamples, seed, min_group_size)
        bar.update(1)
    if len(sources) > 1:
        key = " & ".join(sources)
        inter = np.array([" & ".join(str(v[i]) for v in sources.values()) for i in range(run.n)], dtype=object)
        group_json[key] = run.group_metrics(inter, resamples, seed, min_group_size)
    # ---- counterfactual swaps on the data, and template suites
    cf_json: dict[str, Any] = {}
    for spec, sw in swappers.items():
        bar.set_description(f"{spec} swaps")
        res = run.counterfactual(spec, sw, run.examples, resamples, seed)
        bar.update(1)
        if res is None:
            notes.append(f"{spec}: no example of {data} has a term of this list ({run.slot_word}): nothing to swap")
        else:
            cf_json[spec] = res
    tpl_json: dict[str, Any] = {}
    if templates:
        for spec, sw in swappers.items():
            bar.set_description(f"{spec} templates")
            bar.update(1)
            base = run.template_suite(sw)
            if not base:
                notes.append(f"{spec}: no template suite for this list and task")
                continue
            tpl_json[spec] = run.counterfactual(spec, sw, base, resamples, seed)
    bar.close()
    if not group_json and not cf_json and not tpl_json:
        raise FairnessError("nothing could be audited: " + "; ".join(notes or ["no group column, term grouping, swap "
                            "list or template suite was asked for"]) + ". Give --group-column COL (a sensitive "
                            "attribute of the data), --group-terms LIST, --templates, or data that mentions the terms")
    settings = {"group_columns": list(group_columns), "group_terms": list(group_terms), "swaps": swaps,
                "swap_lists": {s: sw.describe() for s, sw in swappers.items()}, "templates": templates, "seed": seed,
                "bootstrap": {"resamples": resamples, "level": 0.95, "unit": "examples"},
                "min_group_size": min_group_size, "limit": limit, "precision": run.precision,
                "positive_label": getattr(run, "positive", None),
                "ner_context": "none: each sentence (and each counterfactual) is predicted alone" if task == "ner" else None}
    result = audit_header("fairness", SCHEMA_VERSION, model_dir, data, settings)
    result.update(task=task, examples=run.n, overall=run.overall(), group_metrics=group_json, counterfactual=cf_json,
                  templates=tpl_json, notes=notes, headline=headline(group_json, cf_json, tpl_json),
                  plots=["fairness.png"], timings={"total_s": round(time.perf_counter() - t_start, 3)})
    Path(out).mkdir(parents=True, exist_ok=True)
    plot_fairness(result, Path(out) / "fairness.png")
    write_audit(out, result, report_markdown(result))
    return result


def _progress(total: int, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="stage", disable=quiet, leave=False, dynamic_ncols=True)
