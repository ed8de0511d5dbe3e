"""Book-keeping per-example clipping (Bu et al. 2023, "Differentially Private Optimization on Large
Model at Small Cost"): one forward and one backward pass. The backward asks autograd only for the
gradients of the trained layers' outputs (so it skips the weight-gradient products), the
per-example gradient norms come from those and the saved inputs (the ghost norm where it is
cheaper than the gradient itself), and the clipped sum is then one product per layer.

Opacus' ghost clipping reaches the same sum with a second backward pass; the tests check that both
give the same gradients. Covered layers: Linear, LayerNorm and Embedding, which is every trained
parameter of a BERT-style encoder with a classification head (LoRA adapters are Linear too)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trustfit.errors import ConfigError

SUPPORTED = (nn.Linear, nn.LayerNorm, nn.Embedding)


def _trained(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters(recurse=False) if p.requires_grad]


class BookKeepingClipper:
    """Hooks on every module with trained parameters; `clipped_backward(losses)` writes the sum of
    the clipped per-example gradients into `p.grad` and returns the per-example norms."""

    def __init__(self, model: nn.Module, max_grad_norm: float) -> None:
        self.model, self.max_grad_norm = model, max_grad_norm
        self.modules: list[nn.Module] = []
        unsupported = []
        for name, m in model.named_modules():
            if _trained(m):
                (self.modules if isinstance(m, SUPPORTED) else unsupported).append(m if isinstance(m, SUPPORTED)
                                                                                   else f"{name} ({type(m).__name__})")
        if unsupported:
            raise ConfigError("book-keeping clipping covers Linear, LayerNorm and Embedding layers; these trained "
                              f"layers are not: {', '.join(unsupported)}; use --dp-clipping ghost")
        self.records: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        self.handles = [m.register_forward_hook(self._save) for m in self.modules]

    def _save(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if module.training and torch.is_grad_enabled():
            self.records.append((module, inputs[0].detach(), output))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def clipped_backward(self, losses: torch.Tensor) -> torch.Tensor:
        """`losses`: one loss per example (shape [B]) from a forward pass since the last call."""
        records, self.records = self.records, []
        grads = torch.autograd.grad(losses.sum(), [o for _, _, o in records], allow_unused=True)
        n = losses.shape[0]
        sq = torch.zeros(n, dtype=torch.float32, device=losses.device)
        prepared = []
        for (module, x, _), g in zip(records, grads):
            if g is None:
                continue
            x, g = _per_example(module, x, g.float(), n)
            sq += _norm_sq(module, x, g)
            prepared.append((module, x, g))
        norms = sq.sqrt()
        coef = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for module, x, g in prepared:
            for p, value in _clipped_sum(module, x, g, coef).items():
                p.grad = value.to(p.dtype) if p.grad is None else p.grad + value.to(p.dtype)
        return norms


def _per_example(module: nn.Module, x: torch.Tensor, g: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and output gradients as [B, T, ...] (a pooled [B, d] input becomes T = 1)."""
    if isinstance(module, nn.Embedding):
        return x.reshape(n, -1), g.reshape(n, -1, g.shape[-1])
    if isinstance(module, nn.LayerNorm):
        x = nn.functional.layer_norm(x.float(), module.normalized_shape, None, None, module.eps)
    return x.float().reshape(n, -1, x.shape[-1]), g.reshape(n, -1, g.shape[-1])


def _norm_sq(module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Each example's squared gradient norm over the module's trained parameters."""
    out = torch.zeros(g.shape[0], device=g.device)
    if isinstance(module, nn.Linear):
        if module.weight.requires_grad:
            t, d, p = x.shape[1], x.shape[2], g.shape[2]
            if t * (d + p) < d * p:  # ghost norm: <x x^T, g g^T> without forming the [p, d] gradient
                out += (torch.bmm(x, x.transpose(1, 2)) * torch.bmm(g, g.transpose(1, 2))).sum((1, 2))
            else:
                out += torch.einsum("btp,btd->bpd", g, x).pow(2).sum((1, 2))
        if module.bias is not None and module.bias.requires_grad:
            out += g.sum(1).pow(2).sum(1)
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None and module.weight.requires_grad:
            out += (x * g).sum(1).pow(2).sum(1)
        if module.bias is not None and module.bias.requires_grad:
            out += g.sum(1).pow(2).sum(1)
    else:  # Embedding: rows hit by the same id add up
        keep = torch.ones_like(x, dtype=torch.bool) if module.padding_idx is None else x != module.padding_idx
        g = g * keep.unsqueeze(-1)
        same = (x.unsqueeze(2) == x.unsqueeze(1)).float()
        out += (torch.bmm(g, g.transpose(1, 2)) * same).sum((1, 2))
    return out


def _clipped_sum(module: nn.Module, x: torch.Tensor, g: torch.Tensor, coef: torch.Tensor) -> dict[Any, torch.Tensor]:
    """Sum over examples of coef_i x per-example gradient, for each trained parameter."""
    gc = g * coef.view(-1, 1, 1)
    out: dict[Any, torch.Tensor] = {}
    if isinstance(module, nn.Linear):
        if module.weight.requires_grad:
            out[module.weight] = torch.einsum("btp,btd->pd", gc, x)
        if module.bias is not None and module.bias.requires_grad:
            out[module.bias] = gc.sum((0, 1))
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None and module.weight.requires_grad:
            out[module.weight] = (x * gc).sum((0, 1))
        if module.bias is not None and module.bias.requires_grad:
            out[module.bias] = gc.sum((0, 1))
    elif module.weight.requires_grad:
        if module.padding_idx is not None:
            gc = gc * (x != module.padding_idx).unsqueeze(-1)
        grad = torch.zeros(module.weight.shape, dtype=gc.dtype, device=gc.device)
        out[module.weight] = grad.index_add_(0, x.reshape(-1), gc.reshape(-1, gc.shape[-1]))
    return out
