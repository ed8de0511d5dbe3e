"""Resumable checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder holds the model weights, the optimizer state (tensors flattened into
safetensors, hyper-parameters in JSON), the scheduler state, the trainer state (step, epoch,
position in the epoch, plugin states) and every process's RNG states. The pointer file LATEST
is replaced atomically after a checkpoint is complete, so a run killed at any instant resumes
from the last complete one."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

LATEST = "LATEST"


def _optimizer_to_files(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_files(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    for idx, st in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states (torch CPU/CUDA as tensors; Python and NumPy as JSON)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    py = random.getstate()
    npst = np.random.get_state()
    meta = {"python": [py[0], list(py[1]), py[2]],
            "numpy": [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])]}
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
        if states:
            torch.cuda.set_rng_state_all(states)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))


def save_checkpoint(root: Path, step: int, model, optimizer, scheduler, trainer_state: dict[str, Any],
                    rank: int = 0, is_main: bool = True, barrier=lambda: None, keep: int = 1) -> Path:
    """Write checkpoint `step` under `root` (all processes call this; main writes shared files)."""
    folder = root / f"step-{step:08d}"
    if is_main:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    barrier()
    t, m = rng_state()
    save_file(t, str(folder / f"rng-{rank}.safetensors"))
    (folder / f"rng-{rank}.json").write_text(json.dumps(m))
    if is_main:
        save_model(getattr(model, "module", model), str(folder / "model.safetensors"))
        ot, om = _optimizer_to_files(optimizer)
        save_file(ot, str(folder / "optimizer.safetensors"))
        (folder / "optimizer.json").write_text(json.dumps(om))
        (folder / "scheduler.json").write_text(json.dumps(scheduler.state_dict()))
        (folder / "trainer_state.json").write_text(json.dumps(trainer_state, indent=1))
    barrier()
    if is_main:
        tmp = root / (LATEST + ".tmp")
        tmp.write_text(folder.name)
        os.replace(tmp, root / LATEST)
        old = sorted(p for p in root.glob("step-*") if p.is_dir() and p != folder)
        for p in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    barrier()
    return folder


def latest_checkpoint(root: Path) -> Path | None:
    """The last complete checkpoint under `root`, or None."""
    ptr = root / LATEST
    if not ptr.exists():
        return None
    folder = root / ptr.read_text().strip()
    return folder if (folder / "trainer_state.json").exists() else None


def load_checkpoint(folder: Path, model, optimizer, scheduler, rank: int = 0) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and this process's RNG; return the trainer state."""
    load_model(getattr(model, "module", model), str(folder / "model.safetensors"))
    _optimizer_from_files(optimizer, load_file(str(folder / "optimizer.safetensors")),
                          json.loads((folder / "optimizer.json").read_text()))
    scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text()))
    rng_file = folder / f"rng-{rank}.safetensors"
    if rng_file.exists():
        set_rng_state(load_file(str(rng_file)), json.loads((folder / f"rng-{rank}.json").read_text()))
    return json.loads((folder / "trainer_state.json").read_text())
