"""Write a SteadyDancer state dict (official key names, float tensors) in each checkpoint layout.

Used to make test checkpoints in every layout from the same weights, and by the GPU bench.
See ``convert.py`` for what each layout is.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from .convert import quantize_fp8

LAYOUTS = ("official", "kj-fp16", "kj-fp8-scaled")


def backbone_linear_names(sd, blocks_only=False):
    """Names of the Wan backbone's Linear layers (2-D weights outside the pose modules)."""
    names = []
    for k, v in sd.items():
        if not k.endswith(".weight") or v.ndim != 2 or k.startswith("condition_embedding_"):
            continue
        if blocks_only and not k.startswith("blocks."):
            continue
        names.append(k[: -len(".weight")])
    return sorted(names)


def to_fp8_scaled(sd, half=torch.float16):
    """Kijai-style scaled fp8: block Linear weights fp8 + scale_weight, the rest in half precision."""
    out = {k: v.to(half) for k, v in sd.items()}
    for name in backbone_linear_names(sd, blocks_only=True):
        out[name + ".weight"], out[name + ".scale_weight"] = quantize_fp8(out[name + ".weight"])
    out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return out


def write_layout(sd, layout, dest, shards=2, prefix="", config=None):
    """Write ``sd`` as ``layout`` under ``dest`` (a directory for official, else a file path).

    ``config`` (the official ``WanModel`` init arguments, e.g. ``{"num_heads": 40, ...}``) is
    stored where the loader looks for the head count: a diffusers ``config.json`` beside the
    official shards, safetensors metadata ``config`` (JSON) in a single file."""
    dest = Path(dest)
    sd = {k: v.detach().contiguous() for k, v in sd.items()}
    meta = None if config is None else {"config": json.dumps(config, sort_keys=True)}
    if layout == "official":
        dest.mkdir(parents=True, exist_ok=True)
        keys = sorted(sd)
        parts = [keys[i::shards] for i in range(shards)]
        weight_map = {}
        for i, part in enumerate(parts, 1):
            name = f"diffusion_pytorch_model-{i:05d}-of-{shards:05d}.safetensors"
            save_file({k: sd[k].float() for k in part}, str(dest / name))
            weight_map.update({k: name for k in part})
        (dest / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1, sort_keys=True))
        if config is not None:
            (dest / "config.json").write_text(json.dumps({"_class_name": "WanModel", **config}, indent=1, sort_keys=True))
        return dest
    if layout == "kj-fp16":
        out = {prefix + k: v.to(torch.float16) for k, v in sd.items()}
    elif layout == "kj-fp8-scaled":
        out = {prefix + k: v for k, v in to_fp8_scaled(sd).items()}
    else:
        raise ValueError(f"unknown layout {layout!r}; one of {LAYOUTS}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dest), metadata=meta)
    return dest
