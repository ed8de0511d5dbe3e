"""`trustfit audit robustness`: clean vs perturbed scores per perturbation family.

Per family: the clean score and the score on the perturbed data (entity F1 for NER, accuracy
for classification), each with a paired, seeded bootstrap interval over examples; the drop; the
attack success rate (share of examples the model got right that it gets wrong once perturbed,
counted over examples the family changed); the mean share of words changed; model queries per
example; seconds; and the family's constraints, always beside its success rate. Examples a
family cannot change are counted, not dropped. Output per the audit convention: result.json,
report.md, robustness.png, and with `write_examples` the perturbed data for inspection."""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from trustfit.auditing import audit_header, read_labelled_conll, write_audit
from trustfit.encode.windows import context_description
from trustfit.robust.perturb import (DEFAULT_FAMILIES, PerturbationError, changed_share, check_families, is_changed,
                                     make_family, mention_inventory)

SCHEMA_VERSION = 1


def family_rng(seed: int, spec: str) -> np.random.Generator:
    """Each family's own stream: adding or reordering families changes no other family's output."""
    return np.random.default_rng([seed, zlib.crc32(spec.encode())])


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> np.ndarray:
    """[n, 3] true positives, false positives, false negatives of exact entity spans per sentence."""
    from trustfit.evaluate.ner import sentence_entity_counts

    return sentence_entity_counts(gold, pred)[:, 0]


def exact(counts: np.ndarray) -> np.ndarray:
    """Per sentence: every gold entity found and nothing else (no false positive or negative)."""
    return (counts[:, 1] == 0) & (counts[:, 2] == 0)


def _f1(counts: np.ndarray) -> np.ndarray:
    """Micro F1 from summed counts; counts [..., n, 3]."""
    tp, fp, fn = (counts[..., k].sum(-1) for k in range(3))
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)


def paired_bootstrap(clean: np.ndarray, perturbed: np.ndarray, statistic, resamples: int, seed: int,
                     level: float = 0.95) -> dict[str, Any]:
    """Perturbed score and drop (clean - perturbed) with percentile intervals from the same
    resampled examples for both sides (the drop's interval accounts for their pairing)."""
    n = len(clean)
    value_p, value_c = float(statistic(perturbed)), float(statistic(clean))
    out: dict[str, Any] = {"value": value_p, "drop": value_c - value_p, "ci": None, "drop_ci": None, "n": n}
    if n < 2:
        return out
    rng = np.random.default_rng(seed)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    ps, ds = [], []
    for _ in range(resamples // 100 or 1):  # in blocks of 100 resamples: bounded memory
        idx = rng.integers(0, n, size=(100, n))
        sp, sc = statistic(perturbed[idx]), statistic(clean[idx])
        ps.append(sp)
        ds.append(sc - sp)
    ps, ds = np.concatenate(ps), np.concatenate(ds)
    out["ci"] = [float(x) for x in np.quantile(ps, q)]
    out["drop_ci"] = [float(x) for x in np.quantile(ds, q)]
    return out


def _ci_of(values: np.ndarray, statistic, resamples: int, seed: int, level: float = 0.95) -> dict[str, Any]:
    res = paired_bootstrap(values, values, statistic, resamples, seed, level)
    return {"value": res["value"], "ci": res["ci"], "n": res["n"]}


def _progress(total: int, desc: str, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=quiet, leave=False, dynamic_ncols=True)


def run_robustness_audit(model_dir: str, data: str, out: str | Path, families: Sequence[str] | None = None,
                         seed: int = 0, inventory: str | None = None, write_examples: bool = False,
                         text_column: str | None = None, format: str = "auto", limit: int | None = None,
                         resamples: int = 1000, batch_size: int = 64, quiet: bool = False) -> dict[str, Any]:
    """Run the families on `data` against the model in `model_dir`; write and return the result."""
    from trustfit.models.backbone import model_task, read_meta, resolve_model_source

    t_start = time.perf_counter()
    task = model_task(model_dir)
    specs = list(families) if families else list(DEFAULT_FAMILIES[task])
    parsed = check_families(specs, task)
    meta = read_meta(resolve_model_source(model_dir))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runner = _NerRun if task == "ner" else _ClassifyRun
    run = runner(model_dir, data, meta, batch_size=batch_size, text_column=text_column, format=format, limit=limit)
    context = run.context(parsed, inventory)
    fam_json: dict[str, Any] = {}
    for spec, (name, options) in zip(specs, parsed):
        family = make_family(name, options, context)
        fam_json[spec] = run.family(spec, family, family_rng(seed, spec), resamples, seed, out if write_examples else None,
                                    quiet)
        if name == "case" and getattr(run.predictor.tokenizer, "do_lower_case", False):
            fam_json[spec]["note"] = "the model's tokenizer lowercases its input: changes of case cannot reach the model"
    clean = _ci_of(run.clean_values(), run.statistic, resamples, seed)
    metric = "entity F1" if task == "ner" else "accuracy"
    headline: list[dict[str, Any]] = [{"name": f"clean {metric}", "value": round(clean["value"], 4)}]
    for spec, f in fam_json.items():
        headline.append({"name": f"{metric} under {spec}", "value": round(f["perturbed"]["value"], 4),
                         "drop": round(f["perturbed"]["drop"], 4),
                         "attack_success_rate": None if f["attack_success_rate"] is None else round(f["attack_success_rate"], 4)})
    settings = {"families": specs, "seed": seed, "bootstrap": {"resamples": resamples, "level": 0.95,
                                                               "unit": "examples (paired clean/perturbed)"},
                "limit": limit, "inventory": context.get("inventory_source"), "precision": run.precision,
                "ner_context": run.context_note if task == "ner" else None}
    result = audit_header("robustness", SCHEMA_VERSION, model_dir, data, settings)
    result.update(task=task, metric=metric, examples=run.n, clean=clean, families=fam_json, headline=headline,
                  plots=["robustness.png"], timings={"total_s": round(time.perf_counter() - t_start, 3),
                                                     "clean_s": run.clean_seconds})
    plot_robustness(result, out / "robustness.png")
    write_audit(out, result, report_markdown(result))
    return result


class _NerRun:
    statistic = staticmethod(_f1)

    def __init__(self, model_dir: str, data: str, meta: dict, batch_size: int, limit: int | None, **_: Any) -> None:
        from trustfit.data.schema import Corpus
        from trustfit.predict.ner import NerPredictor

        self.data, self.meta = data, meta
        self.predictor = NerPredictor.from_dir(model_dir, batch_size=batch_size)
        self.precision = self.predictor.precision
        corpus = read_labelled_conll(data, self.predictor.schema, meta, "robustness")
        if limit:
            corpus = Corpus(corpus.sentences[:limit], corpus.source, corpus.has_documents)
        self.corpus = corpus
        self.n = len(corpus)
        p = self.predictor  # what context the predictions see: perturbed neighbours can move them
        seen = context_description(p.pack, p.context_tokens, p.pack_tokens) if corpus.has_documents else None
        self.context_note = f"{seen}, from the perturbed document" if seen else "none"
        t0 = time.perf_counter()
        self.clean_tags = self.predictor.predict(corpus).tags
        self.clean_seconds = round(time.perf_counter() - t0, 3)
        gold = [s.tags for s in corpus.sentences]
        self.clean_counts = entity_counts(gold, self.clean_tags)
        self.clean_right = exact(self.clean_counts)

    def clean_values(self) -> np.ndarray:
        return self.clean_counts

    def context(self, parsed, inventory: str | None) -> dict[str, Any]:
        names = {n for n, _ in parsed}
        if not names & {"entity-swap", "entity-novel"}:
            return {}
        from trustfit.data.conll import read_conll

        if not self.corpus.entity_types():
            raise PerturbationError(f"{self.data}: has no entities; entity-swap and entity-novel need gold entity "
                                    "tags to replace")
        source = inventory or self.meta.get("train_file")
        if source and Path(source).exists():
            inv = mention_inventory([read_conll(source, scheme=self.meta.get("scheme_in", "iob2"))])
            note = f"{source} (training data)" if not inventory else str(source)
        else:
            inv, note = mention_inventory([self.corpus]), f"{self.data} (the audited file: training file not found)"
        return {"inventory": inv, "inventory_source": note}

    def family(self, spec, family, rng, resamples, seed, examples_dir, quiet) -> dict[str, Any]:
        from trustfit.data.schema import Corpus
        from trustfit.evaluate.ner import ner_metrics

        t0 = time.perf_counter()
        originals = self.corpus.sentences
        perturbed = []
        with _progress(len(originals), spec, quiet) as bar:
            for s in originals:
                perturbed.append(family.apply(s, rng))
                bar.update(1)
        changed = np.array([is_changed(a, b) for a, b in zip(originals, perturbed)])
        shares = [changed_share(a, b) for a, b, c in zip(originals, perturbed, changed) if c]
        pcorpus = Corpus(perturbed, self.corpus.source, self.corpus.has_documents)
        pred = self.predictor.predict(pcorpus).tags
        seconds = time.perf_counter() - t0
        gold = [s.tags for s in perturbed]
        counts = entity_counts(gold, pred)
        right = exact(counts)
        attacked = changed & self.clean_right
        per_type = ner_metrics(gold, pred, self.predictor.schema.labels).entity
        if examples_dir is not None:
            from trustfit.evaluate.ner import write_conll_predictions

            (examples_dir / "examples").mkdir(exist_ok=True)
            write_conll_predictions(examples_dir / "examples" / f"{_file_name(spec)}.conll", perturbed, pred)
        return {"family": family.name, "constraints": family.constraints(),
                "clean": float(_f1(self.clean_counts)),
                "perturbed": paired_bootstrap(self.clean_counts, counts, _f1, resamples, seed),
                "attack_success_rate": float((~right[attacked]).mean()) if attacked.any() else None,
                "attacked_examples": int(attacked.sum()), "changed_examples": int(changed.sum()),
                "unchanged_examples": int((~changed).sum()),
                "mean_share_words_changed": float(np.mean(shares)) if shares else 0.0,
                "queries_per_example": 1.0, "seconds": round(seconds, 3),
                "per_type_f1": {k: v["f1"] for k, v in per_type.items()}}


class _ClassifyRun:
    statistic = staticmethod(lambda v: v.mean(-1))

    def __init__(self, model_dir: str, data: str, meta: dict, batch_size: int, limit: int | None,
                 text_column: str | None, format: str) -> None:
        from trustfit.data.text import TextCorpus, read_text_corpus
        from trustfit.predict.classify import ClassifierPredictor
        from trustfit.tasks.classify import check_labels

        self.data = data
        self.predictor = ClassifierPredictor.from_dir(model_dir, batch_size=batch_size)
        self.precision = self.predictor.precision
        corpus = read_text_corpus(data, format=format, text_column=text_column or meta.get("text_column", "text"),
                                  label_column=meta.get("label_column", "label"), pair_column=meta.get("pair_column"))
        if not corpus.labels or len(corpus.labels) != len(corpus):
            raise PerturbationError(f"{data}: the robustness audit needs a gold label on every row")
        check_labels(corpus, self.predictor.labels)
        if limit:
            corpus = TextCorpus(corpus.examples[:limit], corpus.source)
        self.corpus, self.n = corpus, len(corpus)
        self.gold = np.array([self.predictor.labels.index(e.label) for e in corpus.examples])
        t0 = time.perf_counter()
        self.clean_pred = self.predict(corpus.examples).argmax(1)
        self.clean_seconds = round(time.perf_counter() - t0, 3)
        self.clean_right = self.clean_pred == self.gold

    def predict(self, examples) -> np.ndarray:
        from trustfit.data.text import TextCorpus

        return self.predictor.predict(TextCorpus(list(examples))).probs

    def clean_values(self) -> np.ndarray:
        return self.clean_right.astype(float)

    def context(self, parsed, inventory: str | None) -> dict[str, Any]:
        if "word-sub" not in {n for n, _ in parsed}:
            return {}
        from trustfit.robust.perturb.word_sub import EmbeddingNeighbours

        p = self.predictor
        return {"score": self.predict, "labels": p.labels, "neighbours": EmbeddingNeighbours.from_model(p.model, p.tokenizer)}

    def family(self, spec, family, rng, resamples, seed, examples_dir, quiet) -> dict[str, Any]:
        t0 = time.perf_counter()
        originals = self.corpus.examples
        perturbed, queries = [], []
        with _progress(len(originals), spec, quiet) as bar:
            for e, ok in zip(originals, self.clean_right):
                if family.adaptive:
                    if ok:  # an adaptive attack works on what the model gets right
                        perturbed.append(family.apply(e, rng))
                        queries.append(family.last_queries)
                    else:
                        perturbed.append(e)
                else:
                    perturbed.append(family.apply(e, rng))
                bar.update(1)
        changed = np.array([is_changed(a, b) for a, b in zip(originals, perturbed)])
        shares = [changed_share(a, b) for a, b, c in zip(originals, perturbed, changed) if c]
        probs = self.predict(perturbed)
        seconds = time.perf_counter() - t0
        pred = probs.argmax(1)
        right = pred == self.gold
        attacked = (self.clean_right if family.adaptive else changed & self.clean_right)
        if examples_dir is not None:
            (examples_dir / "examples").mkdir(exist_ok=True)
            with (examples_dir / "examples" / f"{_file_name(spec)}.jsonl").open("w", encoding="utf-8") as f:
                labels = self.predictor.labels
                for i, (a, b) in enumerate(zip(originals, perturbed)):
                    f.write(json.dumps({"line": a.line, "gold": a.label, "original": a.text, "perturbed": b.text,
                                        "changed": bool(changed[i]), "clean_prediction": labels[self.clean_pred[i]],
                                        "perturbed_prediction": labels[pred[i]]}, ensure_ascii=False) + "\n")
        return {"family": family.name, "constraints": family.constraints(),
                "clean": float(self.clean_right.mean()),
                "perturbed": paired_bootstrap(self.clean_right.astype(float), right.astype(float),
                                              lambda v: v.mean(-1), resamples, seed),
                "attack_success_rate": float((~right[attacked]).mean()) if attacked.any() else None,
                "attacked_examples": int(attacked.sum()), "changed_examples": int(changed.sum()),
                "unchanged_examples": int((~changed).sum()),
                "mean_share_words_changed": float(np.mean(shares)) if shares else 0.0,
                "queries_per_example": float(np.mean(queries)) if queries else 1.0, "seconds": round(seconds, 3)}


def _file_name(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in spec)


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def report_markdown(result: dict[str, Any]) -> str:
    """The human view: one row per family, then the constraints behind each success rate."""
    m = result["metric"]
    c = result["clean"]
    lines = [f"# Robustness audit ({result['task']})", "",
             f"Model `{result['model']['path']}`, data `{result['data']['path']}` ({result['examples']} examples). "
             f"Clean {m}: **{_pct(c['value'])}** (95 % CI {_pct((c['ci'] or [None])[0])}–{_pct((c['ci'] or [None, None])[1])}).",
             "", f"| family | clean {m} | perturbed {m} (95 % CI) | drop (95 % CI) | attack success | changed / unchanged "
             "| words changed | queries / ex. | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for spec, f in result["families"].items():
        p = f["perturbed"]
        ci = f"{_pct(p['ci'][0])}–{_pct(p['ci'][1])}" if p["ci"] else "–"
        dci = f"{_pct(p['drop_ci'][0])}–{_pct(p['drop_ci'][1])}" if p["drop_ci"] else "–"
        asr = "–" if f["attack_success_rate"] is None else f"{_pct(f['attack_success_rate'], 1)} % of {f['attacked_examples']}"
        lines.append(f"| {spec} | {_pct(f['clean'])} | {_pct(p['value'])} ({ci}) | {_pct(p['drop'])} ({dci}) | {asr} | "
                     f"{f['changed_examples']} / {f['unchanged_examples']} | {_pct(f['mean_share_words_changed'], 1)} % | "
                     f"{f['queries_per_example']:.1f} | {f['seconds']:.1f} |")
    lines += ["", "Attack success: share of the examples the model got right (and the family changed) that it gets "
              "wrong once perturbed. Scores in percent; intervals are a paired bootstrap over examples.", "",
              "## Constraints", ""]
    for spec, f in result["families"].items():
        cons = "; ".join(f"{k}: {v}" for k, v in f["constraints"].items())
        lines.append(f"- **{spec}**: {cons}" + (f" ({f['note']})" if f.get("note") else ""))
    if result["task"] == "ner":
        lines += ["", f"Document context during prediction: {result['settings']['ner_context']}."]
    return "\n".join(lines) + "\n"


def plot_robustness(result: dict[str, Any], path: Path) -> None:
    """Bar chart: clean vs perturbed score per family, with the perturbed score's interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(result["families"])
    clean = [100 * result["families"][f]["clean"] for f in fams]
    pert, err = [], [[], []]
    for f in fams:
        p = result["families"][f]["perturbed"]
        lo, hi = p["ci"] or (p["value"], p["value"])
        pert.append(100 * p["value"])
        err[0].append(100 * (p["value"] - lo))
        err[1].append(100 * (hi - p["value"]))
    x = np.arange(len(fams))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(fams) + 1.5), 3.4), dpi=120)
    ax.bar(x - 0.2, clean, 0.4, label="clean", color="#9db4c8")
    ax.bar(x + 0.2, pert, 0.4, yerr=err, capsize=3, label="perturbed", color="#d9822b")
    ax.set_xticks(x, fams, rotation=20, ha="right")
    ax.set_ylabel(f"{result['metric']} (%)")
    lo = min(pert + clean) if fams else 0
    ax.set_ylim(max(0, lo - 10), 100)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Clean vs perturbed, per family", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
