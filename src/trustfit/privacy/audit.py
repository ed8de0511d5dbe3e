"""`trustfit audit privacy`: membership inference (loss threshold and calibrated by a reference
model) and canary exposure, with the model's DP guarantee beside them. Writes result.json,
report.md and roc.png to MODEL/audits/privacy by default (the audit convention)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from trustfit.auditing import audit_header, default_audit_dir, file_sha256, write_audit
from trustfit.errors import DataError
from trustfit.privacy.canaries import canary_exposure, read_canaries
from trustfit.privacy.losses import LossScorer
from trustfit.privacy.membership import calibrated_attack, loss_attack, plot_roc
from trustfit.privacy.report import headline, report_markdown

SCHEMA_VERSION = 1
MAX_OVERLAP = 0.5
SHIFT_WARN = 0.05


def example_key(example) -> tuple:
    """What makes two examples the same (words and tags, or text, pair and label)."""
    if hasattr(example, "tokens"):
        return tuple(example.tokens), tuple(example.tags or ())
    return example.text, example.text_pair, example.label


def split_holdout(train: list, holdout: list, train_path: str, holdout_path: str) -> tuple[list, int]:
    """Holdout examples also in the training file are removed and counted; mostly overlapping files
    are refused (the audit would compare members with members)."""
    seen = {example_key(e) for e in train}
    clean = [e for e in holdout if example_key(e) not in seen]
    removed = len(holdout) - len(clean)
    if not holdout or removed > MAX_OVERLAP * len(holdout):
        raise DataError(f"{holdout_path}: {removed} of its {len(holdout)} examples are also in {train_path}: the "
                        "holdout must be data the model was not trained on (e.g. a test split)")
    return clean, removed


def _write_examples(examples: list, path: Path, task: str) -> Path:
    if task == "ner":
        lines = []
        for s in examples:
            lines += [f"{w} {t}" for w, t in zip(s.tokens, s.tags)] + [""]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        from trustfit.data.text import write_jsonl

        write_jsonl(path, examples)
    return path


def train_reference(meta: dict[str, Any], examples: list, task: str, out: Path, quiet: bool) -> Path:
    """The pretrained backbone fine-tuned, without privacy, on `examples` (half of the holdout)
    with the target's recipe: the reference for per-example difficulty."""
    from trustfit.config import TrainConfig
    from trustfit.train.run import train

    out.mkdir(parents=True, exist_ok=True)
    data = _write_examples(examples, out.parent / ("reference_train" + (".conll" if task == "ner" else ".jsonl")), task)
    cfg = {k: v for k, v in (meta.get("config") or {}).items()
           if not k.startswith(("dp_", "canar")) and k not in ("train", "dev", "out")}
    if (meta.get("config") or {}).get("dp_epsilon") or (meta.get("config") or {}).get("dp_noise"):
        for k in ("lr", "layer_lr_decay", "pack", "context_tokens", "precision"):  # DP-forced: back to defaults
            cfg.pop(k, None)
    if task != "ner":
        cfg.update(format="jsonl", text_column="text", label_column="label",
                   pair_column="text_pair" if cfg.get("pair_column") else None)
    cfg.update(train=str(data), out=str(out / "model"), task=task)
    train(TrainConfig(**cfg), overwrite=True, quiet=quiet)
    return out / "model"


def run_privacy_audit(model_dir: str, train_path: str, holdout_path: str, out: str | None = None,
                      reference: str | None = None, limit: int | None = None, candidates: int = 1000,
                      resamples: int = 1000, seed: int = 0, batch_size: int = 64, quiet: bool = False) -> dict[str, Any]:
    """Run the audit and write its files; returns result.json's content."""
    t0 = time.perf_counter()
    out_dir = Path(out) if out else default_audit_dir(model_dir, "privacy")
    out_dir.mkdir(parents=True, exist_ok=True)
    if file_sha256(train_path) == file_sha256(holdout_path):
        raise DataError(f"{holdout_path}: is the same file as --train {train_path}; pass data the model was not "
                        "trained on")
    target = LossScorer(model_dir, batch_size)
    train_ex = target.read(train_path, "privacy audit (--train)")
    holdout, removed = split_holdout(train_ex, target.read(holdout_path, "privacy audit (--holdout)"),
                                     train_path, holdout_path)
    rng = random.Random(seed)
    rng.shuffle(holdout)
    ref_half, eval_half = (holdout[: len(holdout) // 2], holdout[len(holdout) // 2:]) if reference != "none" \
        else ([], holdout)
    n = min(len(eval_half), len(train_ex), limit or len(train_ex))
    if n < 10:
        raise DataError(f"{holdout_path}: {n} non-member examples after removing overlap and the reference half; "
                        "the audit needs at least 10 a side")
    order = rng.sample(range(len(train_ex)), len(train_ex))
    members, non_members = [train_ex[i] for i in order[:n]], eval_half[:n]
    # the reference sees both sources equally (holdout half + training examples that are not attacked),
    # so a shift between the training file and the holdout does not pass for memorisation
    ref_train = ref_half + [train_ex[i] for i in order[n:n + len(ref_half)]]
    m_loss, n_loss = target.losses(members), target.losses(non_members)
    attacks = {"loss threshold": loss_attack(m_loss, n_loss, resamples=resamples, seed=seed)}
    ref_info: dict[str, Any] = {"used": False}
    shift_auc = None
    if reference != "none":
        ref_dir = Path(reference) if reference else train_reference(target.meta, ref_train, target.task,
                                                                   out_dir / "reference", quiet)
        ref = LossScorer(ref_dir, batch_size)
        m_ref, n_ref = ref.losses(members), ref.losses(non_members)
        attacks["calibrated (reference model)"] = calibrated_attack(m_loss, n_loss, m_ref, n_ref,
                                                                    resamples=resamples, seed=seed)
        # the reference saw no attacked example: if its loss alone tells the two sides apart, the
        # holdout differs from the training data and every AUC above is inflated by that shift
        shift_auc = float(roc_auc_score(np.r_[np.ones(n), np.zeros(n)], -np.r_[m_ref, n_ref]))
        ref_info = {"used": True, "path": str(ref_dir), "trained_here": reference is None,
                    "train_examples": len(ref_train) if reference is None else None,
                    "how": "the pretrained backbone fine-tuned without privacy, with the target's recipe, on half of "
                           "the holdout plus as many training examples that are not attacked (it never saw an "
                           "attacked example)" if reference is None else "given"}
    plot_roc(attacks, out_dir / "roc.png", f"Membership inference: {Path(model_dir).name}")
    record = read_canaries(model_dir)
    canaries = canary_exposure(target, record, candidates, seed) if record else None
    privacy = target.meta.get("privacy") or {"differential_privacy": False}
    result = {**audit_header("privacy", SCHEMA_VERSION, model_dir, None, {
        "limit": limit, "candidates": candidates, "resamples": resamples, "seed": seed}),
        "data": {"train": {"path": str(train_path), "sha256": file_sha256(train_path), "examples": len(train_ex)},
                 "holdout": {"path": str(holdout_path), "sha256": file_sha256(holdout_path),
                             "overlap_removed": removed, "examples_after": len(holdout)},
                 "path": str(holdout_path)},
        "task": target.task, "membership": {"members": n, "non_members": n, "attacks": attacks,
                                            "reference": ref_info, "source_shift_auc": shift_auc,
                                            "shift_note": None if shift_auc is None or abs(shift_auc - 0.5) < SHIFT_WARN
                                            else f"the reference model alone separates the two sides with AUC "
                                            f"{shift_auc:.3f}: the holdout is not distributed like the training data "
                                            "(draw both from one random split), so the attack AUCs overstate "
                                            "memorisation"},
        "canaries": None if record is None else {"template": record["template"], "repeats": record["repeats"],
                                                 "results": canaries},
        "training_privacy": privacy, "plots": ["roc.png"], "seconds": round(time.perf_counter() - t0, 1)}
    result["headline"] = headline(result)
    write_audit(out_dir, result, report_markdown(result))
    return result


def read_result(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "result.json").read_text())
