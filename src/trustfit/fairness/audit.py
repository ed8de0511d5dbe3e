"""`trustfit audit fairness`: group metrics with intervals, counterfactual identity swaps on
real sentences, and self-generated template suites, for classification and NER.

- Group metrics: per group (a sensitive-attribute column of the data, or the group whose terms
  a sentence mentions) accuracy, macro-F1, selection rate, false-positive and false-negative
  rates of one positive label (classification) or entity precision / recall / F1 per type
  (NER), each with a seeded bootstrap interval and its gap to the rest of the data; Fairlearn's
  MetricFrame for the between-group differences and ratios (with intervals from the same
  resampling); the
  intersection of two or more attributes as groups of their own. Groups smaller than
  `min_group_size` get their values and a note, never an interval.
- Counterfactual swaps: every sentence with a swappable term (or, for NER, a person) is
  rewritten once per group; per group pair the flip rate and the mean gap in the positive
  label's probability (classification) or in recall (NER: PER recall for names), each with a
  paired bootstrap interval over sentences. A pair is flagged when the gap's interval excludes 0.
- Templates: the same counterfactual measurement on suites from `templates.py`.

Output per the audit convention: result.json, report.md, fairness.png."""

from __future__ import annotations

import time
import zlib
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trustfit.auditing import audit_header, read_labelled_conll, write_audit
from trustfit.errors import TrustfitError
from trustfit.fairness.metrics import (ClassifyCounts, NerCounts, classify_metric_fns, excludes_zero, group_gaps,
                                       interval, metric_frame, ner_metric_fns, resample_weights)
from trustfit.fairness.swaps import PERSON_LABELS, counterfactual, example_group, example_slots, make_swapper

SCHEMA_VERSION = 1
DEFAULT_SWAPS = ("gender", "names", "religion", "nationality")


class FairnessError(TrustfitError):
    """The fairness audit cannot run as asked."""


def default_positive_label(labels: Sequence[str]) -> str:
    """'positive' when the model has it, else the last label (one-vs-rest)."""
    for lab in labels:
        if lab.lower() in ("positive", "pos", "1", "true", "yes"):
            return lab
    return labels[-1]


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed] + [zlib.crc32(k.encode()) for k in keys])


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


class AuditData:
    """A labelled file and the model's predictions on it, with what both tasks share: group
    metrics from a count table and pair statistics. Subclasses read the task's format."""

    counts: Any
    n: int

    def group_metrics(self, groups: np.ndarray, resamples: int, seed: int, min_group_size: int) -> dict[str, Any]:
        gaps = group_gaps(self.counts, groups, resamples, seed, min_group_size)
        big = [g for g, e in gaps.items() if e["n"] >= min_group_size]
        fl = None
        note = None
        if len(big) >= 2:
            keep = np.isin(groups.astype(str), big)
            fl = self.metric_frame(keep, groups[keep].astype(str), resamples, seed)
        else:
            note = (f"fewer than two groups have {min_group_size} or more examples: no between-group differences "
                    "or ratios")
        flagged = [{"group": g, "metric": m, "gap": v["gap_to_rest"], "gap_ci": v["gap_ci"]}
                   for g, e in gaps.items() for m, v in e["metrics"].items() if v.get("flagged")]
        return {"groups": gaps, "fairlearn": fl, "flagged": flagged, "note": note, "main_metric": self.main_metric}

    @staticmethod
    def pairs(groups: Sequence[str], per_version: np.ndarray, resamples: int, seed: int,
              flips: np.ndarray | None = None) -> dict[str, Any]:
        """Mean gap b - a of a per-version value [n, G] (and flip rates from predictions [n, G]),
        with paired intervals over the same resampled examples."""
        n = per_version.shape[0]
        W = resample_weights(n, resamples, seed) / n
        out = {}
        for a, b in combinations(range(len(groups)), 2):
            d = per_version[:, b] - per_version[:, a]
            item: dict[str, Any] = {"gap": float(d.mean()), "gap_ci": interval(W @ d)}
            item["flagged"] = excludes_zero(item["gap_ci"])
            if flips is not None:
                f = (flips[:, a] != flips[:, b]).astype(float)
                item["flip_rate"], item["flip_rate_ci"] = float(f.mean()), interval(W @ f)
            out[f"{groups[a]} vs {groups[b]}"] = item
        return out


class ClassifyData(AuditData):
    """Classification: gold labels, probabilities, predictions and the positive label."""

    slot_word = "term or listed first name"
    main_metric = "accuracy"

    def __init__(self, model_dir: str, data: str, meta: dict, batch_size: int, text_column: str | None, format: str,
                 limit: int | None, positive_label: str | None) -> None:
        from trustfit.data.text import TextCorpus, read_text_corpus
        from trustfit.predict.classify import ClassifierPredictor
        from trustfit.tasks.classify import check_labels

        self.data = data
        self.predictor = ClassifierPredictor.from_dir(model_dir, batch_size=batch_size)
        self.precision = self.predictor.precision
        labels = self.predictor.labels
        corpus = read_text_corpus(data, format=format, text_column=text_column or meta.get("text_column", "text"),
                                  label_column=meta.get("label_column", "label"), pair_column=meta.get("pair_column"))
        check_labels(corpus, labels)
        if limit:
            corpus = TextCorpus(corpus.examples[:limit], corpus.source)
        self.examples, self.n = corpus.examples, len(corpus)
        if positive_label is not None and positive_label not in labels:
            raise FairnessError(f"--positive-label {positive_label!r} is not a label of the model ({', '.join(labels)})")
        self.positive = positive_label or default_positive_label(labels)
        self.pos = labels.index(self.positive)
        self.gold = np.array([labels.index(e.label) for e in self.examples])
        self.probs = self.predict(self.examples)
        self.pred = self.probs.argmax(1)
        self.counts = ClassifyCounts(self.gold, self.pred, len(labels), self.pos)

    def predict(self, examples) -> np.ndarray:
        from trustfit.data.text import TextCorpus

        return self.predictor.predict(TextCorpus(list(examples))).probs

    def column(self, col: str) -> np.ndarray:
        present = [e.meta.get(col) for e in self.examples]
        if all(v is None for v in present):
            cols = sorted({k for e in self.examples for k in e.meta})
            raise FairnessError(f"{self.data}: no group column {col!r}; the file's other columns are "
                                f"{', '.join(map(repr, cols)) or 'none'} (text and label columns excluded)")
        missing = [f"{e.source}:{e.line}" for e, v in zip(self.examples, present) if v is None or str(v).strip() == ""]
        if missing:
            raise FairnessError(f"{self.data}: {len(missing)} rows have no value in group column {col!r} (first: "
                                f"{', '.join(missing[:5])}); fill them (e.g. 'unknown') or drop those rows")
        return np.array([str(v) for v in present], dtype=object)

    def metric_frame(self, keep: np.ndarray, groups: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
        return metric_frame(classify_metric_fns(len(self.predictor.labels), self.pos), self.gold[keep], self.pred[keep],
                            groups, self.counts.subset(keep), resamples, seed)

    def overall(self) -> dict[str, Any]:
        v = self.counts.values(self.counts.table.sum(0), np.float64(self.n))
        return {m: float(v[m]) for m in self.counts.names} | {"positive_label": self.positive}

    def template_suite(self, sw):
        from trustfit.fairness.templates import sentiment_suite

        return sentiment_suite(sw)

    def counterfactual(self, spec: str, sw, examples, resamples: int, seed: int) -> dict[str, Any] | None:
        base = [e for e in examples if example_slots(e, sw)]
        if not base:
            return None
        versions = [[counterfactual(e, sw, g, _rng(seed, spec, str(i))) for g in sw.groups] for i, e in enumerate(base)]
        flat = [v for row in versions for v in row]
        probs = self.predict(flat).reshape(len(base), len(sw.groups), -1)
        score, pred = probs[:, :, self.pos], probs.argmax(-1)
        W = resample_weights(len(base), resamples, seed) / len(base)
        groups = {g: {"mean_score": float(score[:, k].mean()), "ci": interval(W @ score[:, k]),
                      "positive_share": float((pred[:, k] == self.pos).mean())} for k, g in enumerate(sw.groups)}
        pairs = self.pairs(sw.groups, score, resamples, seed, flips=pred)
        examples_json = [{"versions": {g: v.text for g, v in zip(sw.groups, row)},
                          "scores": {g: round(float(s), 4) for g, s in zip(sw.groups, srow)}}
                         for row, srow in list(zip(versions, score))[:5]]
        out = {"examples": len(base), "metric": f"P({self.positive})", "groups": groups, "pairs": pairs,
               "samples": examples_json}
        polarity = np.array([e.meta.get("polarity", "") for e in base])
        if all(polarity):  # a template suite: the same pairs within each polarity of its words
            out["by_polarity"] = {p: {"examples": int((polarity == p).sum()),
                                      "mean_score": {g: float(score[polarity == p, k].mean()) for k, g in enumerate(sw.groups)},
                                      "pairs": self.pairs(sw.groups, score[polarity == p], resamples, seed,
                                                          flips=pred[polarity == p])}
                                  for p in dict.fromkeys(polarity.tolist())}
        return out


class NerData(AuditData):
    """NER: gold and predicted IOB2 tags of each sentence, predicted one sentence at a time."""

    slot_word = "term, or a PER entity for names"
    main_metric = "f1"

    def __init__(self, model_dir: str, data: str, meta: dict, batch_size: int, limit: int | None, **_: Any) -> None:
        from trustfit.predict.ner import NerPredictor

        self.data = data
        self.predictor = NerPredictor.from_dir(model_dir, batch_size=batch_size)
        self.precision = self.predictor.precision
        corpus = read_labelled_conll(data, self.predictor.schema, meta, "fairness")
        self.examples = corpus.sentences[:limit] if limit else corpus.sentences
        self.n = len(self.examples)
        self.types = sorted({lab[2:] for lab in self.predictor.schema.labels if lab != "O"})
        self.pred = self.predict(self.examples)
        self.counts = NerCounts([s.tags for s in self.examples], self.pred, self.types)

    def predict(self, sentences) -> list[list[str]]:
        from trustfit.data.schema import Corpus

        return self.predictor.predict(Corpus(list(sentences), source=self.data)).tags

    def column(self, col: str) -> np.ndarray:
        raise FairnessError(f"{self.data}: a CoNLL file has no group columns ({col!r}); group NER sentences by the "
                            "terms they mention instead: --group-terms gender (or names, religion, nationality, a "
                            "term list file)")

    def metric_frame(self, keep: np.ndarray, groups: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
        idx = np.flatnonzero(keep)
        return metric_frame(ner_metric_fns(self.counts), idx, idx, groups, self.counts.subset(keep), resamples, seed)

    def overall(self) -> dict[str, Any]:
        v = self.counts.values(self.counts.table.sum(0), np.float64(self.n))
        return {m: float(v[m]) for m in self.counts.names}

    def template_suite(self, sw):
        from trustfit.fairness.templates import ner_suite

        return ner_suite(sw)

    def counterfactual(self, spec: str, sw, examples, resamples: int, seed: int) -> dict[str, Any] | None:
        base = [s for s in examples if example_slots(s, sw)]
        if not base:
            return None
        versions = [[counterfactual(s, sw, g, _rng(seed, spec, str(i))) for g in sw.groups] for i, s in enumerate(base)]
        names = ["original"] + list(sw.groups)
        all_sents = base + [v for row in versions for v in row]
        tags = self.predict(all_sents)
        counts = NerCounts([s.tags for s in all_sents], tags, self.types).table
        n, G = len(base), len(sw.groups)
        per = np.concatenate([counts[:n, None, :], counts[n:].reshape(n, G, -1)], axis=1)  # [n, 1 + G, 3T]
        metric = "PER_recall" if sw.kind == "names" and "PER" in self.types else "f1"
        W = resample_weights(n, resamples, seed)
        boot = self.counts.values(np.einsum("rn,ngk->rgk", W, per), np.float64(n))
        point = self.counts.values(per.sum(0), np.float64(n))
        groups = {g: {"value": float(point[metric][k]), "ci": interval(boot[metric][:, k]),
                      "per_type_recall": {t: _num(point[f"{t}_recall"][k]) for t in self.types}}
                  for k, g in enumerate(names)}
        pairs = {}
        for a, b in combinations(range(1, G + 1), 2):
            d = boot[metric][:, b] - boot[metric][:, a]
            item = {"gap": float(point[metric][b] - point[metric][a]), "gap_ci": interval(d)}
            item["flagged"] = excludes_zero(item["gap_ci"])
            pairs[f"{names[a]} vs {names[b]}"] = item
        samples = [{"versions": {g: " ".join(v.tokens) for g, v in zip(sw.groups, row)}} for row in versions[:5]]
        out = {"examples": n, "metric": metric, "groups": groups, "pairs": pairs, "samples": samples}
        if sw.kind == "names":
            out["names_least_found"] = least_found_names(all_sents[n:], tags[n:], sw.groups * n)
        return out


def least_found_names(sentences, tags, groups: Sequence[str], k: int = 3, min_mentions: int = 10
                      ) -> dict[str, list[dict[str, Any]]]:
    """Per group, the k swapped-in words (first names and surnames, any case) with `min_mentions`
    or more whose person mentions the model found least often as exact PER spans: which names
    make a group's gap."""
    from trustfit.data.tags import spans_from_tags

    found: dict[str, dict[str, list[int]]] = {}
    for s, pred, g in zip(sentences, tags, groups):
        hits = set(spans_from_tags(pred))
        for sp in spans_from_tags(s.tags):
            if sp.label.lower() in PERSON_LABELS:
                for w in s.tokens[sp.start:sp.end]:
                    c = found.setdefault(g, {}).setdefault(w.title(), [0, 0])
                    c[0] += sp in hits
                    c[1] += 1
    return {g: [{"name": w, "recall": c[0] / c[1], "mentions": c[1]}
                for w, c in sorted((kv for kv in by_word.items() if kv[1][1] >= min_mentions),
                                   key=lambda kv: kv[1][0] / kv[1][1])[:k]]
            for g, by_word in found.items()}


def _progress(total: int, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="stage", disable=quiet, leave=False, dynamic_ncols=True)


def _num(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


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
                        "flip_rate": round(item["flip_rate"], 4) if "flip_rate" in item else None})
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
