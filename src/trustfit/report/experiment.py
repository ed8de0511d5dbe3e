"""One experiment file (TOML, YAML or JSON) describes a whole run. The file is validated in full
before anything starts: every unknown key (with the nearest valid one), missing data path and
conflicting option is listed at once with the file and the key."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trustfit.config import TrainConfig, read_structured_file
from trustfit.errors import ConfigError, TrustfitError

BUILT_AUDITS = ("robustness", "explain", "fairness", "privacy")
PLANNED_AUDITS: tuple[str, ...] = ()


SPLIT_PREFIX = "split:"  # "split:train", "split:dev", "split:test": files the [split] stage writes


class SplitSection(BaseModel):
    """Deduplicate and split a labelled classification file first (as `trustfit split`)."""

    model_config = ConfigDict(extra="forbid")
    input: str
    dev: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.1, ge=0, lt=1)
    seed: int = 42
    format: Literal["auto", "csv", "tsv", "jsonl", "fpb"] = "auto"
    text_column: str = "text"
    label_column: str = "label"
    encoding: Optional[str] = None


class EvaluateSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: list[str] = Field(default_factory=list, description="labelled files to score the model on")


class ExplainAuditSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str
    n: int = Field(50, ge=1)
    methods: list[str] = Field(default_factory=lambda: ["ig", "gxi", "shap", "lime", "random"])
    seed: int = 0
    samples: Optional[int] = Field(None, ge=1)


class RobustnessAuditSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str
    families: Optional[list[str]] = Field(None, description="default: every family for the task")
    seed: int = 0
    inventory: Optional[str] = Field(None, description="NER: CoNLL file entity-swap draws mentions from")
    limit: Optional[int] = Field(None, ge=1)
    write_examples: bool = False


class FairnessAuditSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str
    group_columns: list[str] = Field(default_factory=list, description="sensitive-attribute columns (classify)")
    group_terms: list[str] = Field(default_factory=list, description="group examples by the terms they mention")
    swaps: Optional[list[str]] = Field(None, description="default: gender, names, religion, nationality")
    templates: bool = True
    seed: int = 0
    resamples: int = Field(1000, ge=100)
    min_group_size: int = Field(30, ge=2)
    positive_label: Optional[str] = None
    limit: Optional[int] = Field(None, ge=1)


class PrivacyAuditSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str = Field(description="holdout: labelled data the model never saw (non-members; half of it trains the "
                      "reference model)")
    train: Optional[str] = Field(None, description="members are drawn from it (default: the experiment's train file)")
    reference: Optional[str] = Field(None, description="reference model folder, or none (default: trained here)")
    candidates: int = Field(1000, ge=10)
    resamples: int = Field(1000, ge=100)
    seed: int = 0
    limit: Optional[int] = Field(None, ge=10)


class AuditsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    robustness: Optional[RobustnessAuditSection] = None
    explain: Optional[ExplainAuditSection] = None
    fairness: Optional[FairnessAuditSection] = None
    privacy: Optional[PrivacyAuditSection] = None


class ReportSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Optional[str] = None
    intended_use: Optional[str] = None
    out_of_scope: Optional[str] = None
    license: Optional[str] = None
    language: str = "en"
    dataset_name: Optional[str] = Field(None, description="the training data's name for the card's metadata")


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    out: Optional[str] = Field(None, description="run folder, relative to the current folder (default runs/NAME); "
                               "--out overrides. Data paths are relative to the experiment file.")
    track: Literal["none", "tensorboard", "mlflow"] = "none"
    split: Optional[SplitSection] = None
    train: dict[str, Any]
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    audits: AuditsSection = Field(default_factory=AuditsSection)
    report: ReportSection = Field(default_factory=ReportSection)

    def train_config(self, run_dir: Path) -> TrainConfig:
        train = {k: split_path(v, run_dir) if k in ("train", "dev") else v for k, v in self.train.items()}
        return TrainConfig(**{**train, "out": str(run_dir / "model")})


def split_path(value: Any, run_dir: Path) -> Any:
    """'split:dev' -> RUN/data/dev.jsonl; anything else unchanged."""
    if isinstance(value, str) and value.startswith(SPLIT_PREFIX):
        return str(run_dir / "data" / f"{value[len(SPLIT_PREFIX):]}.jsonl")
    return value


_SECTIONS: dict[str, type[BaseModel]] = {"": Experiment, "evaluate": EvaluateSection, "split": SplitSection, "audits": AuditsSection,
                                         "audits.explain": ExplainAuditSection,
                                         "audits.robustness": RobustnessAuditSection,
                                         "audits.fairness": FairnessAuditSection,
                                         "audits.privacy": PrivacyAuditSection, "report": ReportSection,
                                         "train": TrainConfig}


def _nearest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"


def _problem(err: dict, prefix: str = "") -> str:
    loc = [str(x) for x in err["loc"]]
    key = ".".join([prefix] + loc if prefix else loc)
    if err["type"] == "extra_forbidden":
        section = ".".join(([prefix] if prefix else []) + loc[:-1])
        if section == "audits" and loc[-1] in PLANNED_AUDITS:
            return (f"audits.{loc[-1]}: this audit is not built in this version of trustfit "
                    f"(built: {', '.join(BUILT_AUDITS)}); remove the section")
        model = _SECTIONS.get(section)
        known = [k for k in model.model_fields if not (model is TrainConfig and k == "out")] if model else []
        return f"unknown key {key!r}" + (_nearest(loc[-1], known) if known else "")
    if err["type"] == "missing":
        return f"{key}: required"
    return f"{key}: {err['msg']} (got {err.get('input')!r})"


def resolve(path: str, base: Path) -> str:
    """A path from the experiment file: relative paths are relative to the file's folder
    ('split:NAME' names a file of the [split] stage and stays as it is)."""
    if path.startswith(SPLIT_PREFIX):
        return path
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p))


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file; data paths come back resolved against its folder."""
    path = Path(path)
    raw = read_structured_file(path, "experiment")
    problems: list[str] = []
    try:
        exp = Experiment(**raw)
    except ValidationError as e:
        raise ConfigError(f"{path}: invalid experiment file:\n  - " + "\n  - ".join(_problem(x) for x in e.errors())) from None
    base = path.resolve().parent
    train = {k.replace("-", "_"): v for k, v in exp.train.items()}
    if "out" in train:
        problems.append("train.out: the pipeline puts the model in RUN/model; remove the key (set `out` at the top)")
        train.pop("out")
    for key in ("train", "dev", "model"):
        if isinstance(train.get(key), str) and (key != "model" or train[key].startswith((".", "/", "~"))):
            train[key] = resolve(train[key], base)
    try:
        cfg = TrainConfig(**{**train, "out": "<run>/model"})
    except ValidationError as e:
        problems += [_problem(x, "train") for x in e.errors()]
        cfg = None
    checks: list[tuple[str, str]] = []
    if cfg is not None:
        checks.append(("train.train", cfg.train))
        if cfg.dev:
            checks.append(("train.dev", cfg.dev))
    files = [resolve(f, base) for f in exp.evaluate.files]
    checks += [(f"evaluate.files[{i}]", f) for i, f in enumerate(files)]
    explain = exp.audits.explain
    if explain is not None:
        explain = explain.model_copy(update={"data": resolve(explain.data, base)})
        checks.append(("audits.explain.data", explain.data))
        from trustfit.explain import EXPLAINERS

        bad = [m for m in explain.methods if m not in EXPLAINERS]
        if bad:
            problems.append(f"audits.explain.methods: unknown {', '.join(bad)}; use {', '.join(EXPLAINERS)}")
    robustness = exp.audits.robustness
    if robustness is not None:
        robustness = robustness.model_copy(update={
            "data": resolve(robustness.data, base),
            "inventory": resolve(robustness.inventory, base) if robustness.inventory else None})
        checks.append(("audits.robustness.data", robustness.data))
        if robustness.inventory:
            checks.append(("audits.robustness.inventory", robustness.inventory))
        if cfg is not None and robustness.families:
            from trustfit.robust.perturb import check_families

            try:
                check_families(robustness.families, cfg.task)
            except TrustfitError as e:  # a PerturbationError names the family and the fix
                problems.append(f"audits.robustness.families: {e}")
    fairness = exp.audits.fairness
    if fairness is not None:
        from trustfit.fairness.terms import BUILTIN, load_term_list

        def lists(specs):  # built-in names stay, files are relative to the experiment file
            return None if specs is None else [s if s in BUILTIN else resolve(s, base) for s in specs]

        fairness = fairness.model_copy(update={"data": resolve(fairness.data, base), "swaps": lists(fairness.swaps),
                                               "group_terms": lists(fairness.group_terms)})
        checks.append(("audits.fairness.data", fairness.data))
        for key in ("swaps", "group_terms"):
            for spec in getattr(fairness, key) or []:
                try:
                    load_term_list(spec)
                except TrustfitError as e:
                    problems.append(f"audits.fairness.{key}: {e}")
        if cfg is not None and cfg.task == "ner" and fairness.group_columns:
            problems.append("audits.fairness.group_columns: a CoNLL file has no group columns; use group_terms")
    privacy = exp.audits.privacy
    if privacy is not None:
        privacy = privacy.model_copy(update={
            "data": resolve(privacy.data, base), "train": resolve(privacy.train, base) if privacy.train else None,
            "reference": privacy.reference if privacy.reference in (None, "none") else resolve(privacy.reference, base)})
        checks.append(("audits.privacy.data", privacy.data))
        if privacy.train:
            checks.append(("audits.privacy.train", privacy.train))
    split = exp.split
    if split is not None:
        split = split.model_copy(update={"input": resolve(split.input, base)})
        checks.append(("split.input", split.input))
    for key, p in checks:
        if p.startswith(SPLIT_PREFIX):
            name = p[len(SPLIT_PREFIX):]
            if split is None:
                problems.append(f"{key}: {p!r} names a file of the [split] stage, but the file has no [split] section")
            elif name not in ("train", "dev", "test") or (name == "dev" and split.dev == 0) or \
                    (name == "test" and split.test == 0):
                problems.append(f"{key}: {p!r}: the split stage writes "
                                + ", ".join(f"split:{n}" for n, f in (("train", 1), ("dev", split.dev),
                                                                      ("test", split.test)) if f))
        elif not Path(p).exists():
            problems.append(f"{key}: {p}: no such file")
    if split is not None and cfg is not None and cfg.task != "classify":
        problems.append("split: splits a classification file, but train.task is ner (CoNLL files keep their documents)")
    if cfg is not None:
        if cfg.task == "ner":
            for opt in ("calibrate", "class_weights"):
                if getattr(cfg, opt):
                    problems.append(f"train.{opt}: applies to classification, but train.task is ner")
            if cfg.pair_column:
                problems.append("train.pair_column: applies to classification, but train.task is ner")
        if cfg.task == "classify" and cfg.pair_column and explain is not None:
            problems.append("audits.explain: explanations of text-pair classifiers are not supported; "
                            "remove the section or train.pair_column")
    if problems:
        raise ConfigError(f"{path}: invalid experiment file:\n  - " + "\n  - ".join(problems))
    return exp.model_copy(update={"train": train, "evaluate": EvaluateSection(files=files), "split": split,
                                  "audits": AuditsSection(explain=explain, robustness=robustness,
                                                          fairness=fairness, privacy=privacy)})
