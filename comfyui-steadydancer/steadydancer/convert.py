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
  modulation, convolutions and the pose modules stay in high precision, and so do some Linears
  (``head.head``, ``img_emb.proj.*``, ``text_embedding.*``, ``time_embedding.*``,
  ``time_projection.*``). We load every tensor as stored: fp8 with its scale where the file has
  fp8, the file's own dtype elsewhere (``loading.py``); only an explicit fp8 ``weight_dtype``
  quantises the high-precision backbone Linears (``to_model_state_dict(quantize=...)``).

Attention head count (not visible in the weights: every projection is dim × dim): from the
checkpoint where it says so — safetensors metadata ``config`` (JSON with ``num_heads``, the
diffusers config shape) or, for the sharded official layout, the diffusers ``config.json`` beside
the index (what the official ``WanModel.from_pretrained`` reads) — else from ``KNOWN_HEADS`` by
model width, else the caller's explicit ``num_heads``; an unknown width without any of these is a
``CheckpointError``, never a guess.

SteadyDancer is recognised by ``condition_embedding_align.cross_attn.in_proj_bias``.
"""

import json
import logging
import re
from pathlib import Path

import torch

MARKER_KEY = "condition_embedding_align.cross_attn.in_proj_bias"
PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")
FP8_TYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
FP8_MAX = 448.0  # largest finite float8_e4m3fn
# model width → attention heads of the published Wan2.1 sizes (SteadyDancer-14B is Wan2.1-I2V-14B)
KNOWN_HEADS = {5120: 40, 1536: 12}

log = logging.getLogger("steadydancer")


class CheckpointError(ValueError):
    """A checkpoint we cannot use; the message says why and what to do."""


def check_safetensors_complete(path):
    """Raise CheckpointError when a .safetensors file is truncated or not safetensors at all;
    returns its metadata (the checks are fastread.read_header's)."""
    from .fastread import read_header

    return read_header(path)[2]


def _load_file(path):
    """(state dict, safetensors metadata or {}, owned): ``owned`` when the tensors live in memory
    of their own (the parallel reader's buffer) and may become the weights as they are; False for
    ComfyUI's readers, whose tensors may map the file (safetensors mmap, ``torch.load(mmap=True)``)."""
    import comfy.utils

    from . import fastread

    if str(path).endswith(".safetensors"):
        threads = fastread.default_threads()
        if threads:
            return (*fastread.load(path, threads), True)
        meta = check_safetensors_complete(path)
        return comfy.utils.load_torch_file(str(path), safe_load=True), meta, False
    return comfy.utils.load_torch_file(str(path), safe_load=True), {}, False


def _declared_heads(config, where):
    """num_heads from a parsed config dict, or None when it names none; bad values are errors."""
    if not isinstance(config, dict) or config.get("num_heads") is None:
        return None
    n = config["num_heads"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise CheckpointError(f"{where} says num_heads={n!r}; expected a positive integer")
    return n


def declared_heads_from_metadata(meta, where):
    """(num_heads, where) from safetensors metadata ``config`` (a JSON object), or None."""
    raw = (meta or {}).get("config")
    if raw is None:
        return None
    try:
        config = json.loads(raw)
    except ValueError:
        log.warning("%s: safetensors metadata 'config' is not JSON; ignoring it", where)
        return None
    n = _declared_heads(config, f"{where} (metadata 'config')")
    return None if n is None else (n, "checkpoint metadata")


def declared_heads_from_config_json(directory):
    """(num_heads, where) from a diffusers ``config.json`` in ``directory``, or None."""
    p = Path(directory) / "config.json"
    if not p.is_file():
        return None
    try:
        config = json.loads(p.read_text())
    except ValueError as e:
        raise CheckpointError(f"{p}: not valid JSON ({e})") from None
    n = _declared_heads(config, str(p))
    return None if n is None else (n, f"diffusers {p.name}")


def read_checkpoint(path):
    """Read a file, a sharded index .json, or a directory holding one.

    Returns (state dict, layout, declared, owned) with ``declared`` = (num_heads, where it was
    read) when the checkpoint states its head count, else None, and ``owned`` when every tensor is
    in memory of its own (the parallel reader), not possibly a map of the file (see ``_load_file``).
    """
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
    shard = re.fullmatch(r"(.+)-\d{5}-of-\d{5}\.safetensors", p.name)
    if shard and (p.parent / f"{shard.group(1)}.safetensors.index.json").is_file():
        # ComfyUI's file lists show the shards: any one of them stands for the whole checkpoint
        p = p.parent / f"{shard.group(1)}.safetensors.index.json"
    if p.name.endswith(".index.json"):
        weight_map = json.loads(p.read_text()).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{p}: index without a weight_map")
        sd = {}
        owned = True
        declared = declared_heads_from_config_json(p.parent)
        for shard in sorted(set(weight_map.values())):
            part, meta, part_owned = _load_file(p.parent / shard)
            owned = owned and part_owned
            declared = declared or declared_heads_from_metadata(meta, str(p.parent / shard))
            sd.update(part)
        lost = [k for k in weight_map if k not in sd]
        if lost:
            raise CheckpointError(f"{p}: the index lists {len(lost)} keys the shards lack, e.g. {lost[:3]}")
        return sd, "official", declared, owned
    sd, meta, owned = _load_file(p)
    declared = declared_heads_from_metadata(meta, str(p))
    if declared is None and p.name.startswith("diffusion_pytorch_model"):
        # a diffusers save (one file + config.json); any other file ignores a stray config.json
        declared = declared_heads_from_config_json(p.parent)
    return sd, detect_layout(sd, sharded=False), declared, owned


def strip_prefix(sd):
    for pre in PREFIXES:
        if any(k.startswith(pre) for k in sd):
            return {(k[len(pre) :] if k.startswith(pre) else k): v for k, v in sd.items()}
    return dict(sd)


def detect_layout(sd, sharded=False):
    if any(k.endswith((".scale_weight", ".weight_scale")) for k in sd) or any(getattr(v, "dtype", None) in FP8_TYPES for v in sd.values()):
        return "kj-fp8-scaled"
    if sharded:
        return "official"
    half = sum(1 for v in sd.values() if getattr(v, "dtype", None) in (torch.float16, torch.bfloat16))
    return "kj-fp16" if half > len(sd) // 2 else "official"


def require_steadydancer(sd):
    if MARKER_KEY not in sd:
        wan = "blocks.0.self_attn.q.weight" in sd
        what = "a Wan model without SteadyDancer's pose modules" if wan else "not a Wan/SteadyDancer diffusion model"
        raise CheckpointError(f"not a SteadyDancer checkpoint: key '{MARKER_KEY}' is missing ({what}). Load a SteadyDancer file (e.g. Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ.safetensors)")


def resolve_num_heads(dim, num_heads=None, declared=None):
    """Attention heads: explicit ``num_heads`` (0/None = auto) → what the checkpoint declares
    (``declared`` = (n, where)) → ``KNOWN_HEADS`` by width → CheckpointError. Returns (n, where)."""
    dim = int(dim)
    if num_heads:
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1 or dim % num_heads:
            raise CheckpointError(f"num_heads={num_heads!r} does not divide the model width dim={dim}")
        if declared and declared[0] != num_heads:
            log.warning("num_heads=%d overrides the %d the checkpoint declares (%s)", num_heads, *declared)
        return num_heads, "num_heads override"
    if declared:
        n, where = declared
        if dim % n:
            raise CheckpointError(f"{where} declares num_heads={n}, which does not divide the model width dim={dim}")
        return n, where
    if dim in KNOWN_HEADS:
        return KNOWN_HEADS[dim], "known model table"
    known = ", ".join(f"dim {d} → {h} heads" for d, h in sorted(KNOWN_HEADS.items()))
    raise CheckpointError(
        f"cannot tell the attention head count of this SteadyDancer checkpoint: its width dim={dim} is not a "
        f"known model size ({known}) and it declares none (safetensors metadata 'config' with num_heads, or a "
        "diffusers config.json beside the shards). Set num_heads on the SteadyDancer Model Loader node"
    )


def config_from_state_dict(sd, num_heads=None, declared=None):
    """Model sizes read from the weights (tiny test models work), as kwargs of SteadyDancerWanModel.
    The head count comes from ``resolve_num_heads`` (it is not in the weights)."""

    def shape(k):
        if k not in sd:
            raise CheckpointError(f"SteadyDancer checkpoint is missing key '{k}'")
        return sd[k].shape

    dim, in_dim = shape("patch_embedding.weight")[:2]
    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    in_dim_c = shape("patch_embedding_ref_c.weight")[1]
    dy_fc = shape("condition_embedding_spatial.fc.0.weight")
    heads, where = resolve_num_heads(dim, num_heads, declared)
    log.info("SteadyDancer: %d attention heads (%s), dim %d", heads, where, dim)
    return dict(
        patch_size=(1, 2, 2),
        dim=dim,
        in_dim=in_dim,
        ffn_dim=shape("blocks.0.ffn.0.weight")[0],
        freq_dim=shape("time_embedding.0.weight")[1],
        text_dim=shape("text_embedding.0.weight")[1],
        out_dim=shape("head.head.weight")[0] // 4,
        num_heads=heads,
        num_layers=layers,
        text_len=512,
        in_dim_c=in_dim_c,
        noise_dim=shape("condition_embedding_align.proj_r.weight")[1],
        align_hidden=shape("condition_embedding_align.proj_p.weight")[0],
        align_heads=8,
        dy_dim=shape("condition_embedding_spatial.conv_q.weight")[0],
        dy_squeeze=dy_fc[0],
        dy_mul=dy_fc[1] // in_dim_c,
        cross_attn_norm="blocks.0.norm3.weight" in sd,
        qk_norm="blocks.0.self_attn.norm_q.weight" in sd,
        eps=1e-6,
    )


def expected_keys(config):
    """Parameter names → shapes, and Linear layer names, of our model for this config (built on the meta device: no memory)."""
    import comfy.ops
    from .model import SteadyDancerWanModel

    with torch.device("meta"):
        m = SteadyDancerWanModel(operations=comfy.ops.disable_weight_init, device="meta", **config)
    linear = {n for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear)}
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}, linear


def quantize_fp8(w, dtype=torch.float8_e4m3fn):
    """Per-tensor scaled fp8 (default e4m3fn): returns (fp8 weight, float32 scalar scale)."""
    top = torch.finfo(dtype).max
    scale = (w.float().abs().amax() / top).clamp(min=1e-12)
    return (w.float() / scale).clamp(-top, top).to(dtype), scale.reshape(())


def to_model_state_dict(sd, config=None, num_heads=None, declared=None, quantize=False):
    """Normalise any supported layout to ours; returns (state dict, config, scaled_fp8 dtype or None).

    Scaled fp8: fp8 weights keep their ``scale_weight``; Linears the file keeps in high precision
    stay as stored (scale 1) unless ``quantize`` (an explicit fp8 ``weight_dtype``), which gives
    the backbone ones their own per-tensor fp8 scale."""
    sd = strip_prefix(sd)
    sd = {k.replace(".weight_scale", ".scale_weight"): v for k, v in sd.items()}
    require_steadydancer(sd)
    marker = sd.pop("scaled_fp8", None)
    sd.pop("freqs", None)
    config = config or config_from_state_dict(sd, num_heads, declared)
    keys, linears = expected_keys(config)
    missing = sorted(k for k in keys if k not in sd)
    if missing:
        raise CheckpointError(f"SteadyDancer checkpoint is incomplete: {len(missing)} missing key(s), e.g. {missing[:5]}")
    fp8 = marker is not None or any(v.dtype in FP8_TYPES for v in sd.values())
    scaled = None
    if fp8:
        scaled = marker.dtype if marker is not None and marker.dtype in FP8_TYPES else torch.float8_e4m3fn
        # the pose modules get plain cast ops (no scale) when the file keeps them all in high precision
        extras_hp = not any(sd[n + ".weight"].dtype in FP8_TYPES for n in linears if n.startswith("condition_embedding_"))
        for name in linears:
            wk, sk = name + ".weight", name + ".scale_weight"
            pose = name.startswith("condition_embedding_")
            if sd[wk].dtype in FP8_TYPES:
                sd[sk] = sd.get(sk, torch.ones(())).float().reshape(())
            elif quantize and not pose:
                # asked for fp8 storage: the backbone Linears the file kept in high precision
                # get their own per-tensor scale
                sd[wk], sd[sk] = quantize_fp8(sd[wk], scaled)
            elif not (pose and extras_hp):
                # kept as stored (the loader gives the layer the file's dtype); scale 1 is exact
                sd[sk] = torch.ones((), dtype=torch.float32)
        bad = [k for k, v in sd.items() if v.dtype in FP8_TYPES and k.rsplit(".", 1)[0] not in linears]
        if bad:
            raise CheckpointError(f"fp8 tensors outside Linear layers are not supported: {bad[:3]}")
        config = dict(config, extras_high_precision=extras_hp)
    extra = sorted(k for k in sd if k not in keys and not k.endswith((".scale_weight", ".scale_input")))
    if extra:  # tolerated (other tools add bookkeeping tensors), but said
        log.warning("ignoring %d unexpected key(s), e.g. %s", len(extra), extra[:5])
        for k in extra:
            sd.pop(k)
    return sd, config, scaled
