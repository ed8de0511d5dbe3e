"""Prediction: batched, length-sorted inference (every NER word gets one tag; every text one
label distribution)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch


@contextmanager
def inference(model, device: torch.device, precision: str) -> Iterator[torch.nn.Module]:
    """The bare model on `device` in eval mode under inference_mode (+ bf16 autocast when asked);
    the model's training mode is restored afterwards (evaluations run inside training)."""
    m = getattr(model, "module", model)
    was_training = m.training
    m.eval()
    m.to(device)
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            yield m
    finally:
        if was_training:
            m.train()


def token_budget_batches(sorted_lengths: Sequence[int], max_items: int, max_tokens: int) -> list[list[int]]:
    """Consecutive index batches of length-sorted inputs: at most `max_items` inputs and at most
    `max_tokens` padded sub-tokens each (long inputs go in small batches, short ones in large),
    which bounds inference memory without slowing short inputs."""
    batches: list[list[int]] = []
    cur: list[int] = []
    for i, n in enumerate(sorted_lengths):
        if cur and (len(cur) + 1 > max_items or (len(cur) + 1) * n > max_tokens):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches
