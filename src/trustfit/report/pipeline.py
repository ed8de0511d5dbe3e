"""`trustfit run`: the stages train -> evaluate -> audit.KIND -> report, each writing into the run
folder. A stage is skipped when it finished before with the same settings and inputs (a hash of
its settings, its input files and, downstream of training, the model's fingerprint) and re-run
when any of them changed; `--from STAGE` forces that stage and every later one. A failing
evaluation or audit is recorded (pipeline.json, and the card) and the other stages go on."""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from trustfit.auditing import file_sha256, model_fingerprint
from trustfit.errors import ConfigError, TrustfitError
from trustfit.report.experiment import Experiment, split_path

STATE = "pipeline.json"


def stage_names(exp: Experiment) -> list[str]:
    names = (["split"] if exp.split is not None else []) + ["train"]
    if exp.evaluate.files:
        names.append("evaluate")
    names += [f"audit.{k}" for k in ("robustness", "explain", "fairness", "privacy")
              if getattr(exp.audits, k) is not None]
    return names + ["report"]


def _hash(settings: Any, files: list[str], model_dir: Path | None = None) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for f in files:
        h.update(file_sha256(f).encode())
    if model_dir is not None:
        h.update(model_fingerprint(model_dir).encode())
    return h.hexdigest()


class Pipeline:
    def __init__(self, exp: Experiment, run_dir: Path, source: str, force_from: str | None = None,
                 quiet: bool = False, echo: Callable[[str], None] = print) -> None:
        self.exp, self.run_dir, self.source, self.quiet, self.echo = exp, Path(run_dir), source, quiet, echo
        names = stage_names(exp)
        if force_from is not None:
            matches = [n for n in names if n == force_from or n.split(".")[0] == force_from]
            if not matches:
                raise ConfigError(f"--from {force_from!r}: this experiment's stages are {', '.join(names)}")
            force_from = matches[0]
        self.names, self.force_from = names, force_from
        self.state_path = self.run_dir / STATE
        self.state: dict[str, Any] = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        self.state.setdefault("stages", {})
        self.model_dir = self.run_dir / "model"

    def _forced(self, name: str) -> bool:
        return self.force_from is not None and self.names.index(name) >= self.names.index(self.force_from)

    def _save(self) -> None:
        self.state_path.write_text(json.dumps(self.state, indent=2))

    def run(self) -> dict[str, Any]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state.update(experiment=self.source, name=self.exp.name)
        tracker = None
        if self.exp.track != "none":
            from trustfit.train.tracking import make_tracker

            tracker = make_tracker(self.exp.track, self.run_dir, params={"experiment": self.exp.name, **self.exp.train})
        try:
            for i, name in enumerate(self.names, 1):
                self._stage(i, name, tracker)
        finally:
            if tracker is not None:
                tracker.close()
        return self.state

    def _stage(self, i: int, name: str, tracker) -> None:
        exp = self.exp
        if name == "split":
            digest = _hash(exp.split.model_dump(), [exp.split.input])
            action = self._split
        elif name == "train":
            cfg = exp.train_config(self.run_dir)
            files = [cfg.train] + ([cfg.dev] if cfg.dev else [])
            digest = _hash(cfg.model_dump(), files)
            action = lambda: self._train(cfg, tracker)  # noqa: E731
        elif name == "evaluate":
            files = [split_path(f, self.run_dir) for f in exp.evaluate.files]
            digest = _hash(exp.evaluate.model_dump(), files, self.model_dir)
            action = self._evaluate
        elif name.startswith("audit."):
            kind = name.split(".", 1)[1]
            section = getattr(exp.audits, kind)
            files = [section.data] + ([self._privacy_train(section)] if kind == "privacy" else [])
            digest = _hash(section.model_dump(), [split_path(f, self.run_dir) for f in files], self.model_dir)
            action = lambda: self._audit(kind, section, tracker)  # noqa: E731
        else:
            digest = None
            action = lambda: self._report(tracker)  # noqa: E731
        prev = self.state["stages"].get(name, {})
        label = f"[{i}/{len(self.names)}] {name}"
        if digest is not None and prev.get("status") == "done" and prev.get("hash") == digest and not self._forced(name):
            self.echo(f"{label}: unchanged since {prev.get('finished')}, skipped")
            return
        self.echo(f"{label}: running")
        t0 = time.perf_counter()
        record: dict[str, Any] = {"hash": digest}
        try:
            extra = action() or {}
            record.update(status="done", **extra)
        except Exception as e:  # noqa: BLE001 - recorded; training failures still stop the run
            msg = str(e) if isinstance(e, TrustfitError) else f"{type(e).__name__}: {e}"
            record.update(status="failed", error=msg)
            if not isinstance(e, TrustfitError):
                record["traceback"] = traceback.format_exc(limit=6)
            self.state["stages"][name] = {**record, "seconds": round(time.perf_counter() - t0, 1),
                                          "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
            self._save()
            self.echo(f"{label}: FAILED: {msg.splitlines()[0]}")
            if name in ("split", "train"):
                raise
            return
        record.update(seconds=round(time.perf_counter() - t0, 1), finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        self.state["stages"][name] = record
        self._save()
        self.echo(f"{label}: done in {record['seconds']:.0f} s")

    # ------------------------------------------------------------------ stages
    def _split(self) -> dict:
        from trustfit.data.split import split_corpus, write_splits
        from trustfit.data.text import read_text_corpus

        sp = self.exp.split
        corpus = read_text_corpus(sp.input, format=sp.format, text_column=sp.text_column,
                                  label_column=sp.label_column, encoding=sp.encoding)
        parts, rep = split_corpus(corpus, dev=sp.dev, test=sp.test, seed=sp.seed)
        out = self.run_dir / "data"
        paths = write_splits(parts, out)
        (out / "split_report.json").write_text(json.dumps({**rep.to_json(), "files": paths}, indent=2))
        return {"sizes": rep.sizes}

    def _train(self, cfg, tracker) -> dict:
        from trustfit.train.run import train

        resume = (self.model_dir / "run_config.json").exists() and (self.model_dir / "checkpoints").exists() and \
            json.loads((self.model_dir / "run_config.json").read_text()) == cfg.model_dump() and \
            not (self.model_dir / "train_summary.json").exists()
        summary = train(cfg, resume=resume, overwrite=not resume, quiet=self.quiet,
                        extra_plugins=[tracker] if tracker else None)
        return {"resumed": resume, "steps": summary["steps"], "words_per_second": round(summary["words_per_second"])}

    def _evaluate(self) -> dict:
        from trustfit.evaluate.run import evaluate_file

        out = self.run_dir / "evaluate"
        out.mkdir(exist_ok=True)
        results, failures = [], []
        for k, f in enumerate(split_path(f, self.run_dir) for f in self.exp.evaluate.files):
            try:
                task, metrics, headline = evaluate_file(str(self.model_dir), f)
            except TrustfitError as e:
                failures.append(f"{f}: {e}")
                continue
            rec = {"file": f, "sha256": file_sha256(f), "task": task, "headline": headline, "metrics": metrics.to_json()}
            (out / f"{k:02d}_{Path(f).stem}.json").write_text(json.dumps(rec, indent=2))
            results.append(headline)
        if failures:
            raise TrustfitError("; ".join(failures))
        return {"headlines": results}

    def _audit(self, kind: str, section, tracker) -> dict:
        if kind == "explain":
            from trustfit.explain.audit import run_explain_audit

            res = run_explain_audit(str(self.model_dir), split_path(section.data, self.run_dir), self.model_dir / "audits" / "explain",
                                    section.methods, n=section.n, seed=section.seed, samples=section.samples,
                                    quiet=self.quiet)
            if tracker is not None:
                tracker.log_summary({f"audit/explain/{m}/comprehensiveness": v["comprehensiveness"]["mean"]
                                     for m, v in res["methods"].items() if v["comprehensiveness"]["mean"] is not None})
            return {"headline": res["headline"]}
        if kind == "robustness":
            from trustfit.robust.audit import run_robustness_audit

            res = run_robustness_audit(str(self.model_dir), split_path(section.data, self.run_dir),
                                       self.model_dir / "audits" / "robustness", section.families, seed=section.seed,
                                       inventory=section.inventory, write_examples=section.write_examples,
                                       limit=section.limit, quiet=self.quiet)
            if tracker is not None:
                tracker.log_summary({f"audit/robustness/{f}/perturbed": v["perturbed"]["value"]
                                     for f, v in res["families"].items()})
            return {"headline": res["headline"]}
        if kind == "fairness":
            from trustfit.fairness.audit import run_fairness_audit

            res = run_fairness_audit(str(self.model_dir), split_path(section.data, self.run_dir),
                                     self.model_dir / "audits" / "fairness", group_columns=section.group_columns,
                                     group_terms=section.group_terms, swaps=section.swaps, templates=section.templates,
                                     seed=section.seed, resamples=section.resamples,
                                     min_group_size=section.min_group_size, positive_label=section.positive_label,
                                     limit=section.limit, quiet=self.quiet)
            if tracker is not None:
                tracker.log_summary({f"audit/fairness/{h['name']}": h["value"] for h in res["headline"]})
            return {"headline": res["headline"]}
        if kind == "privacy":
            from trustfit.privacy.audit import run_privacy_audit

            res = run_privacy_audit(str(self.model_dir), split_path(self._privacy_train(section), self.run_dir),
                                    split_path(section.data, self.run_dir), str(self.model_dir / "audits" / "privacy"),
                                    reference=section.reference, limit=section.limit, candidates=section.candidates,
                                    resamples=section.resamples, seed=section.seed, quiet=self.quiet)
            if tracker is not None:
                tracker.log_summary({f"audit/privacy/{h['name']}": h["value"] for h in res["headline"]
                                     if h["value"] is not None})
            return {"headline": res["headline"]}
        raise ConfigError(f"audit {kind!r} is not built")

    def _privacy_train(self, section) -> str:
        """The file members are drawn from: the section's, else the experiment's training file."""
        return section.train or self.exp.train_config(self.run_dir).train

    def _report(self, tracker) -> dict:
        from trustfit.report.card import write_card

        paths = write_card(self.run_dir, self.exp)
        if tracker is not None:
            for p in paths.values():
                tracker.log_artifact(p)
        return {"card": {k: str(v) for k, v in paths.items()}}
