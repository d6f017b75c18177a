"""Load a SteadyDancer checkpoint (any layout) into a ComfyUI MODEL (a ModelPatcher).

Mirrors ``comfy.sd.load_diffusion_model_state_dict`` (dtype choice, manual cast, scaled fp8,
offload device) but builds our model config from the weights instead of ComfyUI's detection.

Scaled fp8 differs from ComfyUI core on purpose: core's scaled-fp8 ops allocate every Linear in
fp8 and copy the file into it, so a Linear the file keeps in fp16/bf16 would be cast to fp8
without a scale. We give every parameter the dtype the file stores it in before loading (fp8
with its ``scale_weight``, the file's dtype elsewhere); the ops cast per call to the compute
dtype as usual. An explicit ``weight_dtype`` changes that: fp8_* quantises the high-precision
backbone Linears (per-tensor scale), fp16/bf16/fp32 stores the non-fp8 tensors in that dtype.
"""

import logging

import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils

from . import fast
from .convert import FP8_TYPES, read_checkpoint, to_model_state_dict
from .fastread import assign_weights
from .model_base import SteadyDancerConfig

log = logging.getLogger("steadydancer")

WEIGHT_DTYPES = {
    "default": None,
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e4m3fn_fast": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp32": torch.float32,
}


def _keep_file_dtypes(module, sd, dtype=None):
    """Before ``load_state_dict``: every parameter the state dict supplies gets the dtype it is
    stored in (``dtype`` instead, when given, for the non-fp8 ones), so the copy rounds nothing."""
    for k, v in sd.items():
        owner, _, leaf = k.rpartition(".")
        mod = module.get_submodule(owner) if owner else module
        p = mod._parameters.get(leaf)
        if p is None:
            continue
        want = v.dtype if dtype is None or v.dtype in FP8_TYPES else dtype
        if p.dtype != want:
            mod._parameters[leaf] = torch.nn.Parameter(torch.empty(p.shape, dtype=want, device=p.device), requires_grad=False)


def _load_weights(model, sd, copy=False):
    """``BaseModel.load_model_weights`` where every tensor whose shape and dtype the model already
    has becomes the model's weight itself (``fastread.assign_weights``): the parallel reader's
    buffer is not copied a second time (16.4 GB for the fp8 file). ``copy``: the tensors may map a
    file (ComfyUI's readers), so they are copied in instead. ``sd`` is emptied, as core does."""
    to_load = model.model_config.process_unet_state_dict(dict(sd))
    sd.clear()
    if copy:
        # never file-backed weights
        result = model.diffusion_model.load_state_dict(to_load, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    else:
        missing, unexpected = assign_weights(model.diffusion_model, to_load)
    if missing:
        log.warning("SteadyDancer: weights missing from the file: %s", missing)
    if unexpected:
        log.warning("SteadyDancer: file tensors the model does not use: %s", unexpected)


def load_state_dict_model(sd, weight_dtype="default", layout=None, num_heads=None, declared=None, speed=None, copy_weights=False):
    """``num_heads``: explicit head count (0/None: ``declared`` = (n, where) from the checkpoint,
    else the known-model table; see ``convert.resolve_num_heads``). ``speed``: a ``fast.Speed``
    (attention kernel, fp8 matmul, compile) for the blocks, or None for ComfyUI's plain block path;
    it may set the compute dtype (bf16 for FA3 / row-wise fp8). ``copy_weights``: ``sd``'s tensors
    may map a file (they are copied into the model, not assigned)."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {sorted(WEIGHT_DTYPES)}, got {weight_dtype!r}")
    sd, config, scaled = to_model_state_dict(sd, num_heads=num_heads, declared=declared, quantize=WEIGHT_DTYPES[weight_dtype] in FP8_TYPES)
    params = comfy.utils.calculate_parameters(sd)
    model_config = SteadyDancerConfig(config)
    model_config.scaled_fp8 = scaled
    # fp8 matmuls only when asked ("_fast", like ComfyUI's --fast fp8_matrix_mult): ComfyUI's fp8
    # path clamps activations to ±448 when the file has no input scales. Otherwise fp8 weights
    # stay fp8 in memory and are upcast per layer to the compute dtype.
    if weight_dtype == "fp8_e4m3fn_fast":
        model_config.optimizations["fp8"] = True
    load_device = mm.get_torch_device()
    offload_device = mm.unet_offload_device()
    supported = list(model_config.supported_inference_dtypes)
    forced = WEIGHT_DTYPES[weight_dtype]
    if scaled is not None and forced in (torch.float8_e4m3fn, torch.float8_e5m2):
        forced = None  # already scaled fp8: its fp8 stays, convert quantised the high-precision Linears
    if forced is None:
        file_dtype = None if scaled is not None else comfy.utils.weight_dtype(sd)
        unet_dtype = mm.unet_dtype(model_params=params, supported_dtypes=supported, weight_dtype=file_dtype)
    else:
        unet_dtype = forced
    manual_cast = mm.unet_manual_cast(unet_dtype, load_device, supported)
    need = fast.compute_dtype_for(speed, load_device) if speed is not None else None
    if need is not None and (manual_cast or unet_dtype) != need:
        manual_cast = need if unet_dtype != need else None
    model_config.set_inference_dtype(unet_dtype, manual_cast)
    model = model_config.get_model(sd, "")
    model = model.to(offload_device)
    if scaled is not None:
        _keep_file_dtypes(model.diffusion_model, sd, forced)  # forced: an explicit fp16/bf16/fp32, else None
    _load_weights(model, sd, copy=copy_weights)
    log.info(
        "SteadyDancer: layout=%s dim=%d heads=%d layers=%d weight dtype=%s compute=%s scaled_fp8=%s", layout, config["dim"], config["num_heads"], config["num_layers"], unet_dtype, manual_cast, scaled
    )
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
    patcher.steadydancer_layout = layout
    if speed is not None:
        fast.apply(patcher, speed)
    return patcher


def load_steadydancer(path, weight_dtype="default", num_heads=0, speed=None):
    sd, layout, declared, owned = read_checkpoint(path)
    return load_state_dict_model(sd, weight_dtype, layout=layout, num_heads=num_heads, declared=declared, speed=speed, copy_weights=not owned)
