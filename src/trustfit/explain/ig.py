"""Integrated gradients (Sundararajan et al. 2017) with Captum's LayerIntegratedGradients on the
backbone's word embeddings: the path runs from a baseline input ([PAD] or [MASK] in place of
every word sub-token, special tokens kept) to the input; scores are summed over the hidden
dimension and over a word's sub-tokens. The completeness gap (|sum of scores - (f(x) -
f(baseline))|) says how well the integral was approximated: it shrinks as steps grow."""

from __future__ import annotations

import time

import torch

from trustfit.explain.base import Attribution, Target, Text
from trustfit.explain.model import ExplainableModel, ExplainError


class IntegratedGradients:
    name = "ig"
    stochastic = False

    def __init__(self, model: ExplainableModel, steps: int = 20, baseline: str = "pad", internal_batch_size: int = 64,
                 method: str = "gausslegendre", seed: int = 0) -> None:
        if steps < 2:
            raise ExplainError(f"ig needs at least 2 steps, got {steps}")
        if baseline not in ("pad", "mask"):
            raise ExplainError(f"unknown ig baseline {baseline!r}: use pad or mask")
        if internal_batch_size < 1:
            raise ExplainError(f"internal batch size must be at least 1, got {internal_batch_size}")
        self.model = model
        self.settings = {"steps": steps, "baseline": baseline, "internal_batch_size": internal_batch_size,
                         "integration": method}

    def explain(self, text: Text, target: Target) -> Attribution:
        from captum.attr import LayerIntegratedGradients

        m = self.model
        t0 = time.perf_counter()
        batch = m.gradient_batch(text, target)
        rows = batch["input_ids"].shape[0]
        base = m.baseline_ids(batch, self.settings["baseline"])
        passes = 0

        def forward(input_ids, attention_mask, tmask, tlab):
            nonlocal passes
            passes += input_ids.shape[0]
            return m.forward_value(input_ids, attention_mask, tmask, tlab)

        lig = LayerIntegratedGradients(forward, m.model.get_input_embeddings())
        steps = self.settings["steps"]
        with torch.enable_grad():
            attr, delta = lig.attribute(
                inputs=batch["input_ids"], baselines=base,
                additional_forward_args=(batch["attention_mask"], batch["tmask"], batch["tlab"]),
                n_steps=steps, method=self.settings["integration"],
                internal_batch_size=max(rows, self.settings["internal_batch_size"] // rows * rows),
                return_convergence_delta=True)
        token_scores = attr.sum(-1).detach()
        scores = m.word_scores(token_scores, batch["word_index"], len(text))
        with torch.no_grad():
            fx = float(m.forward_value(batch["input_ids"], batch["attention_mask"], batch["tmask"], batch["tlab"]).sum())
            fb = float(m.forward_value(base, batch["attention_mask"], batch["tmask"], batch["tlab"]).sum())
        m.passes += passes // rows + 2
        gap = abs(sum(scores) - (fx - fb))
        extra = {"f_input": round(fx, 6), "f_baseline": round(fb, 6), "sum_of_scores": round(sum(scores), 6),
                 "completeness_gap": round(gap, 6),
                 "relative_completeness_gap": round(gap / max(abs(fx - fb), 1e-12), 6),
                 "captum_delta": round(float(delta.abs().sum()), 6)}
        return Attribution(text.words, scores, target, self.name, dict(self.settings), passes // rows + 2,
                           time.perf_counter() - t0, text.text, text.offsets, extra)
