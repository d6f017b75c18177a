"""SteadyDancer checkpoint layouts → the state dict our model loads (official key names).

Layouts we read (what we learned about each):

* ``official`` — MCG-NJU/SteadyDancer-14B as published: diffusers ``ModelMixin`` shards
  ``diffusion_pytorch_model-0000k-of-0000n.safetensors`` plus
  ``diffusion_pytorch_model.safetensors.index.json`` (``weight_map``: key → shard), keys are the
  official module names (``blocks.N.self_attn.q.weight``, ``condition_embedding_align.…``), fp32 or
  bf16. A single file with these keys is accepted as well.
* ``kj-fp16`` — Kijai's single ``Wan21_SteadyDancer_fp16.safetensors`` (also bf16): the official
  key names unchanged, half precision. Kijai's loader (ComfyUI-WanVideoWrapper ``nodes_model_loading``)
  also strips a ``model.diffusion_model.`` / ``model.`` prefix, so we accept those prefixes too.
* ``kj-fp8-scaled`` — ``…_fp8_e4m3fn_scaled_KJ.safetensors``: the same key names; Linear weights
  stored as float8_e4m3fn with a per-tensor ``<layer>.scale_weight`` (float32; the real weight is
  ``weight.float() * scale_weight``) and a ``scaled_fp8`` marker tensor whose dtype is the fp8
  type. This is ComfyUI core's own scaled-fp8 convention (``comfy.ops.scaled_fp8_ops``), so the
  fp8 weights stay fp8 in memory and ComfyUI's ops upcast or use fp8 matmuls. Kijai's loader also
  accepts ``.weight_scale`` as a spelling of ``.scale_weight``; so do we. Norms, biases,
  modulation, convolutions and the pose modules stay in high precision.

SteadyDancer is recognised by ``condition_embedding_align.cross_attn.in_proj_bias``.
"""
import json
import logging
import os
import struct
from pathlib import Path

import torch

MARKER_KEY = "condition_embedding_align.cross_attn.in_proj_bias"
PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")
FP8_TYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
FP8_MAX = 448.0  # largest finite float8_e4m3fn


class CheckpointError(ValueError):
    """A checkpoint we cannot use; the message says why and what to do."""


def check_safetensors_complete(path):
    """Raise CheckpointError when a .safetensors file is truncated or not safetensors at all."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, not even a header)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100_000_000:
            raise CheckpointError(f"{path}: not a safetensors file or truncated header (header says {n} bytes, file has {size})")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CheckpointError(
            f"{path}: truncated file: its header needs {8 + n + end} bytes but the file has {size}; "
            "download it again (the download was probably interrupted)")
    return header.get("__metadata__") or {}


def _load_file(path):
    import comfy.utils
    if str(path).endswith(".safetensors"):
        check_safetensors_complete(path)
    return comfy.utils.load_torch_file(str(path), safe_load=True)


def read_checkpoint(path):
    """Read a file, a sharded index .json, or a directory holding one; returns (state dict, layout)."""
    p = Path(path)
    if p.is_dir():
        idx = sorted(p.glob("*.safetensors.index.json"))
        files = sorted(p.glob("*.safetensors"))
        if idx:
            p = idx[0]
        elif len(files) == 1:
            p = files[0]
        else:
            raise CheckpointError(f"{path}: directory without a *.safetensors.index.json or a single .safetensors file")
    if not p.exists():
        raise CheckpointError(f"{p}: no such file")
    if p.name.endswith(".index.json"):
        weight_map = json.loads(p.read_text()).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{p}: index without a weight_map")
        sd = {}
        for shard in sorted(set(weight_map.values())):
            part = _load_file(p.parent / shard)
            sd.update(part)
        lost = [k for k in weight_map if k not in sd]
        if lost:
            raise CheckpointError(f"{p}: the index lists {len(lost)} keys the shards lack, e.g. {lost[:3]}")
        return sd, "official"
    sd = _load_file(p)
    return sd, detect_layout(sd, sharded=False)


def strip_prefix(sd):
    for pre in PREFIXES:
        if any(k.startswith(pre) for k in sd):
            return {(k[len(pre):] if k.startswith(pre) else k): v for k, v in sd.items()}
    return dict(sd)


def detect_layout(sd, sharded=False):
    if any(k.endswith((".scale_weight", ".weight_scale")) for k in sd) or any(
            getattr(v, "dtype", None) in FP8_TYPES for v in sd.values()):
        return "kj-fp8-scaled"
    if sharded:
        return "official"
    half = sum(1 for v in sd.values() if getattr(v, "dtype", None) in (torch.float16, torch.bfloat16))
    return "kj-fp16" if half > len(sd) // 2 else "official"


def require_steadydancer(sd):
    if MARKER_KEY not in sd:
        wan = "blocks.0.self_attn.q.weight" in sd
        what = "a Wan model without SteadyDancer's pose modules" if wan else "not a Wan/SteadyDancer diffusion model"
        raise CheckpointError(
            f"not a SteadyDancer checkpoint: key '{MARKER_KEY}' is missing ({what}). "
            "Load a SteadyDancer file (e.g. Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ.safetensors)")


def config_from_state_dict(sd):
    """Model sizes read from the weights (tiny test models work), as kwargs of SteadyDancerWanModel."""
    def shape(k):
        if k not in sd:
            raise CheckpointError(f"SteadyDancer checkpoint is missing key '{k}'")
        return sd[k].shape
    dim, in_dim = shape("patch_embedding.weight")[:2]
    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    in_dim_c = shape("patch_embedding_ref_c.weight")[1]
    dy_fc = shape("condition_embedding_spatial.fc.0.weight")
    return dict(
        patch_size=(1, 2, 2), dim=dim, in_dim=in_dim,
        ffn_dim=shape("blocks.0.ffn.0.weight")[0],
        freq_dim=shape("time_embedding.0.weight")[1],
        text_dim=shape("text_embedding.0.weight")[1],
        out_dim=shape("head.head.weight")[0] // 4,
        num_heads=dim // 128, num_layers=layers, text_len=512,
        in_dim_c=in_dim_c, noise_dim=shape("condition_embedding_align.proj_r.weight")[1],
        align_hidden=shape("condition_embedding_align.proj_p.weight")[0], align_heads=8,
        dy_dim=shape("condition_embedding_spatial.conv_q.weight")[0], dy_squeeze=dy_fc[0],
        dy_mul=dy_fc[1] // in_dim_c,
        cross_attn_norm="blocks.0.norm3.weight" in sd,
        qk_norm="blocks.0.self_attn.norm_q.weight" in sd,
        eps=1e-6,
    )


def expected_keys(config):
    """Parameter names of our model for this config (built on the meta device: no memory)."""
    import comfy.ops
    from .model import SteadyDancerWanModel
    with torch.device("meta"):
        m = SteadyDancerWanModel(operations=comfy.ops.disable_weight_init, device="meta", **config)
    linear = {n for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear)}
    return set(m.state_dict().keys()), linear


def quantize_fp8(w):
    """Per-tensor scaled float8_e4m3fn: returns (fp8 weight, float32 scalar scale)."""
    scale = (w.float().abs().amax() / FP8_MAX).clamp(min=1e-12)
    return (w.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), scale.reshape(())


def to_model_state_dict(sd, config=None):
    """Normalise any supported layout to ours; returns (state dict, config, scaled_fp8 dtype or None)."""
    sd = strip_prefix(sd)
    sd = {k.replace(".weight_scale", ".scale_weight"): v for k, v in sd.items()}
    require_steadydancer(sd)
    marker = sd.pop("scaled_fp8", None)
    sd.pop("freqs", None)
    config = config or config_from_state_dict(sd)
    keys, linears = expected_keys(config)
    missing = sorted(k for k in keys if k not in sd)
    if missing:
        raise CheckpointError(
            f"SteadyDancer checkpoint is incomplete: {len(missing)} missing key(s), e.g. {missing[:5]}")
    fp8 = marker is not None or any(v.dtype in FP8_TYPES for v in sd.values())
    scaled = None
    if fp8:
        scaled = marker.dtype if marker is not None and marker.dtype in FP8_TYPES else torch.float8_e4m3fn
        for name in linears:
            wk, sk = name + ".weight", name + ".scale_weight"
            if sd[wk].dtype in FP8_TYPES:
                sd[sk] = sd.get(sk, torch.ones(())).float().reshape(())
            elif not name.startswith("condition_embedding_"):
                # ComfyUI's scaled-fp8 ops make every backbone Linear fp8: quantize the ones
                # the file kept in high precision with their own per-tensor scale
                sd[wk], sd[sk] = quantize_fp8(sd[wk])
        bad = [k for k, v in sd.items() if v.dtype in FP8_TYPES and k.rsplit(".", 1)[0] not in linears]
        if bad:
            raise CheckpointError(f"fp8 tensors outside Linear layers are not supported: {bad[:3]}")
        config = dict(config, extras_high_precision=not any(
            sd[n + ".weight"].dtype in FP8_TYPES for n in linears if n.startswith("condition_embedding_")))
    extra = sorted(k for k in sd if k not in keys and not k.endswith((".scale_weight", ".scale_input")))
    if extra:  # tolerated (other tools add bookkeeping tensors), but said
        logging.getLogger("steadydancer").warning("ignoring %d unexpected key(s), e.g. %s", len(extra), extra[:5])
        for k in extra:
            sd.pop(k)
    return sd, config, scaled
