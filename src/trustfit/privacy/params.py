"""Which parameters a private run trains (`--dp-train`), and a plain HF copy of a LoRA model.

Fewer trained parameters mean less noise in total and cheaper per-sample norms: the word
embedding alone is half of all-MiniLM-L6-v2's 22.6M parameters."""

from __future__ import annotations

import re

from trustfit.errors import ConfigError

TRAIN_MODES = "all | no-embeddings | top-N | lora"
LORA_TARGETS = ["query", "key", "value", "dense"]


def check_train_mode(mode: str) -> str:
    """`mode` if it is one of TRAIN_MODES, else a ConfigError saying which are."""
    if mode in ("all", "no-embeddings", "lora") or re.fullmatch(r"top-[1-9][0-9]*", mode):
        return mode
    raise ConfigError(f"dp_train: unknown value {mode!r}; use {TRAIN_MODES} (e.g. top-2: the top 2 layers and the head)")


def _encoder_layers(model) -> list:
    base = getattr(model, model.base_model_prefix, model)
    encoder = getattr(base, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if layers is None:
        raise ConfigError(f"dp_train top-N: {type(model).__name__} has no encoder.layer list; use all or no-embeddings")
    return list(layers)


def select_trainable(model, mode: str, lora_rank: int = 8):
    """Freeze what `mode` leaves out (LoRA adapters are injected into `model`); returns the model
    to train and the number of trained parameters."""
    check_train_mode(mode)
    base = getattr(model, model.base_model_prefix, model)
    if mode == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        head = {n.split(".")[0] for n, _ in model.named_parameters() if not n.startswith(model.base_model_prefix)}
        for p in model.parameters():
            p.requires_grad_(False)
        model = inject_adapter_in_model(LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0,
                                                   target_modules=LORA_TARGETS), model)
        for n, p in model.named_parameters():
            if n.split(".")[0] in head:
                p.requires_grad_(True)
    elif mode == "no-embeddings":
        for p in base.embeddings.parameters():
            p.requires_grad_(False)
    elif mode.startswith("top-"):
        n_top = int(mode[4:])
        layers = _encoder_layers(model)
        if n_top > len(layers):
            raise ConfigError(f"dp_train {mode}: the model has {len(layers)} layers")
        for p in base.parameters():
            p.requires_grad_(False)
        for layer in layers[len(layers) - n_top:]:
            for p in layer.parameters():
                p.requires_grad_(True)
    return model, sum(p.numel() for p in model.parameters() if p.requires_grad)


def has_lora(model) -> bool:
    return any(".lora_A." in n for n, _ in model.named_parameters())


def plain_copy(model):
    """A plain model of the same class with every LoRA adapter merged into its base weight, so
    the saved folder loads anywhere without peft."""
    from peft.tuners.lora import LoraLayer

    state = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            delta = sum(module.get_delta_weight(a) for a in module.active_adapters)
            state[f"{name}.weight"] = (base.weight + delta).detach().clone()
            if base.bias is not None:
                state[f"{name}.bias"] = base.bias.detach().clone()
    for key, value in model.state_dict().items():
        if "lora_" in key:
            continue
        plain_key = key.replace(".base_layer.", ".")
        state.setdefault(plain_key, value)
    plain = type(model)(model.config)
    missing, unexpected = plain.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in getattr(plain, "_tied_weights_keys", None) or []]
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise RuntimeError(f"LoRA merge left keys unmatched: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return plain
