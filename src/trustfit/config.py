"""Experiment configuration: one TOML or YAML file = one experiment; CLI flags override it.

Unknown keys and wrong types are errors that name the file and the key, so a typo never
silently falls back to a default."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trustfit.errors import ConfigError, TrustfitError


# DP-SGD needs a larger step than plain fine-tuning (large noisy logical batches); measured on CoNLL-2003
# at epsilon 8 (bench/RESULTS.md): LoRA 1e-2, the frozen-embedding encoder 5e-3 (1e-2 diverges there)
DP_DEFAULT_LR = {"lora": 1e-2, "other": 5e-3}


def _asks_for_dp(data: dict) -> bool:
    """Whether raw config values ask for DP-SGD (a budget or a noise multiplier): TrainConfig.dp
    before validation."""
    return data.get("dp_epsilon") is not None or data.get("dp_noise") is not None


class TrainConfig(BaseModel):
    """Everything that defines a training run (saved as run_config.json in the output folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["ner", "classify"] = "ner"
    train: str
    dev: Optional[str] = None
    out: str
    model: Optional[str] = Field(None, description="HF folder or hub id; default: packaged all-MiniLM-L6-v2")
    # optimisation
    epochs: int = Field(3, ge=1)
    max_steps: Optional[int] = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-4, gt=0, description="peak learning rate of the head; lower layers get less with "
                      "layer_lr_decay (DP and federated runs have their own defaults)")
    weight_decay: float = Field(0.01, ge=0)
    micro_batch_tokens: Optional[int] = Field(None, ge=1, description="run each batch's forward and backward in "
                                              "passes of at most this many padded sub-tokens and add their "
                                              "gradients: the same step with less activation memory; "
                                              "none = one pass. Not under DP (its own physical batches) nor "
                                              "with adversarial training (its passes need the whole batch)")
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    max_grad_norm: float = Field(1.0, ge=0)
    layer_lr_decay: float = Field(0.8, gt=0, le=1, description="layer-wise lr decay: encoder layer l of L trains at "
                                  "lr x decay^(L+1-l), the head at lr; 1 = off (the default under DP)")
    ema_decay: float = Field(0.0, ge=0, lt=1, description="evaluate and save an exponential moving average of the "
                             "weights with this decay (e.g. 0.999); 0 = off")
    attention_dropout: Optional[float] = Field(None, ge=0, lt=1, description="dropout on attention probabilities; "
                                               "default 0 for NER (same F1, faster steps), the model's own (0.1 for "
                                               "BERT-like models) for classification and under DP")
    seed: int = 42
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast where the hardware has native bf16 (CUDA, AVX512-BF16/AMX CPUs)")
    # encoding
    context_tokens: int = Field(32, ge=0, description="NER: document-context sub-tokens on each side of an input "
                                "beyond the sentences packed into it (FLERT margins); used only where the file marks "
                                "documents (-DOCSTART-). 0: packed sentences still see each other and every "
                                "sub-token fed is labelled: 2x the words/s on CPU, 0.3 dev F1 lower")
    context_share: float = Field(1.0, ge=0, le=1, description="NER: the share of packs that train with their "
                                 "context margins, drawn afresh each epoch; the rest train without them (half the "
                                 "sub-tokens). Prediction always feeds the margins. 1 = every pack; 0.25: "
                                 "1.4-1.6x the words/s on CPU, hold-out F1 kept, dev F1 0.4 lower (3 seeds)")
    context_from_epoch: int = Field(-1, description="NER: the epochs before this one (counted from 0; negative: "
                                    "from the end) train every pack without its margins (document context late in "
                                    "training). -1 (default): margins in the last epoch only; 0: in every epoch. "
                                    "Against 0 over 3 epochs: 1.35x less training time, F1 within noise on 7,000 "
                                    "sentences (5 seeds), higher on the full CoNLL-2003 train set (bench/RESULTS.md)")
    max_length: Optional[int] = Field(None, ge=8)
    stride: int = Field(32, ge=0)
    pack: bool = Field(True, description="pack consecutive sentences of a document into one input, where they see "
                       "each other (document context at no extra cost)")
    pack_tokens: int = Field(64, ge=8, description="target sub-tokens per packed input (64, even with 2 x 32 of "
                             "context, keeps inputs within the 128 positions all-MiniLM-L6-v2 was tuned on)")
    pool_batches: int = Field(16, ge=1, description="length-bucketing pool, in batches; 1 = nearly random batches")
    decode: Literal["viterbi", "argmax"] = Field("viterbi", description="NER: tags from word label probabilities "
                                                 "by IOB2-constrained Viterbi, or argmax repaired as conlleval does")
    # data
    scheme: Literal["iob1", "iob2", "bioes", "bilou"] = "iob2"
    token_column: int = 0
    tag_column: int = -1
    encoding: Optional[str] = Field(None, description="input encoding (default utf-8; latin-1 for fpb)")
    delimiter: Optional[str] = None
    unknown_tags: Literal["error", "o"] = "error"
    # classification data and options
    format: Literal["auto", "csv", "tsv", "jsonl", "fpb"] = "auto"
    text_column: str = "text"
    label_column: str = "label"
    pair_column: Optional[str] = Field(None, description="second text column (query/candidate pairs)")
    class_weights: bool = Field(False, description="weight the loss by inverse class frequency")
    calibrate: bool = Field(False, description="fit temperature scaling on dev and store it with the model")
    # robustness: adversarial training in embedding space and with perturbed text copies
    adversarial: Literal["none", "fgm", "pgd", "freelb"] = Field(
        "none", description="adversarial training on the word embeddings (robust/adversarial.py)")
    adv_epsilon: float = Field(1.0, gt=0, description="radius of the perturbation (L2 per example); the FGM step size")
    adv_alpha: float = Field(0.3, gt=0, description="PGD/FreeLB step size")
    adv_steps: int = Field(3, ge=1, description="PGD/FreeLB ascent steps K")
    adv_start_epoch: int = Field(0, ge=0, description="first epoch (0-based) trained adversarially")
    adv_module: Optional[str] = Field(None, description="module whose output is perturbed (default: the input "
                                      "embeddings, model.get_input_embeddings())")
    augment: list[str] = Field(default_factory=list, description="perturbation families whose copies are mixed "
                               "into each epoch, e.g. typo,case,entity-swap")
    augment_rate: float = Field(0.3, gt=0, le=1, description="perturbed copies per epoch, as a share of the examples")
    # fairness: counterfactual data augmentation (identity terms swapped, labels kept)
    cda: list[str] = Field(default_factory=list, description="identity-term lists swapped during training: gender, "
                           "names, religion, nationality or a term list file")
    cda_rate: float = Field(0.5, gt=0, le=1, description="share of the examples with a swappable term that are "
                            "swapped, freshly each epoch")
    # privacy: DP-SGD (privacy/dp.py) and canaries for the privacy audit (privacy/canaries.py)
    dp_epsilon: Optional[float] = Field(None, description="train with DP-SGD to this epsilon (noise from the plan)")
    dp_delta: float = Field(1e-5, description="DP delta; must be below 1/N")
    dp_noise: Optional[float] = Field(None, gt=0, description="noise multiplier (instead of, or with, dp_epsilon "
                                      "as a budget)")
    dp_max_grad_norm: float = Field(1.0, gt=0, description="per-example clipping norm C")
    dp_accountant: Literal["prv", "rdp"] = Field("prv", description="privacy accountant (Opacus PRV or RDP)")
    dp_clipping: Literal["bk", "ghost"] = Field("bk", description="per-example clipping: bk (book-keeping, one "
                                                "backward pass) or ghost (Opacus ghost clipping, two)")
    dp_train: str = Field("lora", description="parameters trained under DP: lora (saved merged), all, "
                          "no-embeddings or top-N")
    dp_batch_size: int = Field(256, ge=1, description="expected logical (Poisson) batch under DP; batch_size is then "
                               "the physical batch")
    canaries: int = Field(0, ge=0, description="secret-like canary sentences inserted into training")
    canary_repeats: int = Field(1, ge=1, description="copies of each canary in the training data")
    # schedule of evaluation, checkpoints, early stopping
    eval_every: Optional[int] = Field(None, ge=1, description="steps between dev evaluations; default: each epoch")
    checkpoint_every: int = Field(500, ge=1)
    patience: Optional[int] = Field(None, ge=1, description="early stop after this many evaluations without gain")
    eval_batch_size: int = Field(64, ge=1)


    @model_validator(mode="before")
    @classmethod
    def _dp_defaults(cls, data: Any) -> Any:
        """Under DP, change the defaults the guarantee needs and refuse what would void it."""
        if not isinstance(data, dict):
            return data
        if not _asks_for_dp(data):
            used = [k for k in ("dp_delta", "dp_max_grad_norm", "dp_accountant", "dp_clipping", "dp_train",
                                "dp_batch_size")
                    if k in data and data[k] != cls.model_fields[k].default]
            if used:
                raise ValueError(f"{', '.join(used)}: DP options need dp_epsilon (--dp-epsilon) or dp_noise "
                                 "(--dp-noise)")
            return data
        eps = data.get("dp_epsilon")
        if eps is not None and (not isinstance(eps, (int, float)) or eps <= 0):
            raise ValueError(f"dp_epsilon: must be a number above 0 (got {eps!r}); smaller is more private, "
                             "1 to 10 is usual")
        delta = data.get("dp_delta", 1e-5)
        if not isinstance(delta, (int, float)) or not 0 < delta < 1:
            raise ValueError(f"dp_delta: must be between 0 and 1, below 1/N (got {delta!r})")
        why = "under DP each training example must be one model input (the privacy unit)"
        refused = {"pack": (True, f"{why}: drop --pack"),
                   "context_tokens": (None, f"{why}: document context shows a sentence to its neighbours' "
                                      "gradients; use --context-tokens 0"),
                   "pool_batches": (None, "the length-bucketed sampler voids the Poisson sampling the accountant "
                                    "assumes; drop pool_batches"),
                   "precision": ("bf16", "bf16 per-example norms can exceed the clipping bound by rounding; "
                                 "DP runs in fp32"),
                   "class_weights": (True, "class weights are computed from the training labels without noise"),
                   "adversarial": (None, "adversarial steps add gradients outside the clipped, noised ones"),
                   "augment": (None, "augmented copies put an example in the data more than once"),
                   "cda": (None, "counterfactual copies put an example in the data more than once")}
        defaults = {"context_tokens": 0, "pool_batches": cls.model_fields["pool_batches"].default,
                    "adversarial": "none", "augment": [], "cda": []}
        problems = []
        for key, (bad, message) in refused.items():
            if key not in data:
                continue
            value = data[key]
            if (bad is not None and value == bad) or (bad is None and value not in (defaults[key], "", None, [])):
                problems.append(f"{key}: {message}")
        if problems:
            raise ValueError("DP training cannot be combined with: " + "; ".join(problems))
        lr = DP_DEFAULT_LR["lora" if data.get("dp_train", "lora") == "lora" else "other"]
        # DP's learning rates were tuned with every layer at one rate
        return {"lr": lr, "layer_lr_decay": 1.0, **data, "pack": False, "context_tokens": 0, "precision": "fp32"}

    @field_validator("dp_train")
    @classmethod
    def _check_dp_train(cls, v: str) -> str:
        from trustfit.privacy.params import check_train_mode

        try:
            return check_train_mode(v)
        except TrustfitError as e:
            raise ValueError(str(e).removeprefix("dp_train: ")) from None

    @field_validator("augment", "cda", mode="before")
    @classmethod
    def _split_augment(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [x.strip() for x in v.split(",") if x.strip() and x.strip() != "none"]
        return v

    @property
    def dp(self) -> bool:
        """True when this run trains with DP-SGD."""
        return self.dp_epsilon is not None or self.dp_noise is not None

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        """NER trains without attention dropout unless told otherwise: over 3 seeds the same dev and
        hold-out F1, and on CPU 1.28x (bf16) / 1.15x (fp32, AVX2) the words/s (bench/RESULTS.md)."""
        if not isinstance(data, dict) or data.get("attention_dropout") is not None:
            return data
        if data.get("task", "ner") == "ner" and not _asks_for_dp(data):
            return {**data, "attention_dropout": 0.0}
        return data

    @model_validator(mode="after")
    def _check_context_from_epoch(self) -> "TrainConfig":
        if self.context_from_epoch < -self.epochs:
            n = self.epochs
            raise ValueError(f"context_from_epoch {self.context_from_epoch} counts back past the first of {n} epochs: "
                             f"use 0 to {n - 1}, or -1 (the last epoch) to -{n}")
        return self

    @model_validator(mode="after")
    def _check_augment(self) -> "TrainConfig":
        if self.augment:
            from trustfit.robust.perturb import check_families

            try:
                check_families(self.augment, self.task, purpose="augment")
            except TrustfitError as e:  # reported as this field's problem
                raise ValueError(f"augment: {e}") from None
        if self.cda:
            from trustfit.fairness.terms import load_term_list

            if self.augment:
                raise ValueError("cda and augment both rebuild each epoch's data and cannot be combined yet: "
                                 "choose one")
            for spec in self.cda:
                try:
                    load_term_list(spec)
                except TrustfitError as e:
                    raise ValueError(f"cda: {e}") from None
        return self


def read_structured_file(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The top-level table of a TOML, YAML or JSON file, as written (errors name the file)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: {what} file not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{p}: unknown {what} format {p.suffix!r}; use .toml, .yaml or .json")
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - parser errors carry line numbers in their text
        raise ConfigError(f"{p}: cannot parse: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a table of key = value")
    return data


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Raw key/values of a TOML, YAML or JSON config file."""
    data = read_structured_file(path)
    # allow a [train] table or flat keys
    if "train" in data and isinstance(data["train"], dict):
        data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
    return {k.replace("-", "_"): v for k, v in data.items()}


def build_config(file: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Merge a config file with CLI overrides (None = not given) and validate."""
    data = read_config_file(file) if file else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**data)
    except ValidationError as e:
        where = f"{file}: " if file else ""
        lines = []
        for err in e.errors():
            key = ".".join(str(x) for x in err["loc"])
            if err["type"] == "extra_forbidden":
                lines.append(f"unknown key {key!r} (known: {', '.join(TrainConfig.model_fields)})")
            elif err["type"] == "missing":
                lines.append(f"{key!r} is required (--{key.replace('_', '-')} or `{key} = ...` in the config file)")
            elif not err["loc"]:  # a check across fields: its message names the field
                lines.append(err["msg"].removeprefix("Value error, "))
            else:
                lines.append(f"{key}: {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})")
        raise ConfigError(where + "invalid configuration:\n  - " + "\n  - ".join(lines)) from None
