"""Random scores (standard normal, seeded): the floor every real method must clear on
faithfulness; if one does not, the metric or the method is broken."""

from __future__ import annotations

import time
import zlib

import numpy as np

from trustfit.explain.base import Attribution, Target, Text
from trustfit.explain.model import ExplainableModel


class RandomExplainer:
    name = "random"
    stochastic = True

    def __init__(self, model: ExplainableModel, seed: int = 0) -> None:
        self.model = model
        self.seed = seed
        self.settings = {"seed": seed}

    def explain(self, text: Text, target: Target) -> Attribution:
        t0 = time.perf_counter()
        rng = np.random.default_rng([self.seed, zlib.crc32(text.text.encode("utf-8"))])
        scores = rng.standard_normal(len(text)).tolist()
        return Attribution(text.words, scores, target, self.name, dict(self.settings), 0, time.perf_counter() - t0,
                           text.text, text.offsets)
