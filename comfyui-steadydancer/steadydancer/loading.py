"""Load a SteadyDancer checkpoint (any layout) into a ComfyUI MODEL (a ModelPatcher).

Mirrors ``comfy.sd.load_diffusion_model_state_dict`` (dtype choice, manual cast, scaled fp8,
offload device) but builds our model config from the weights instead of ComfyUI's detection.
"""
import logging

import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils

from . import fast
from .convert import read_checkpoint, to_model_state_dict
from .model_base import SteadyDancerConfig

log = logging.getLogger("steadydancer")

WEIGHT_DTYPES = {"default": None, "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e4m3fn_fast": torch.float8_e4m3fn,
                 "fp8_e5m2": torch.float8_e5m2, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def load_state_dict_model(sd, weight_dtype="default", layout=None, speed=None):
    """``speed``: a ``fast.Speed`` (attention kernel, fp8 matmul, compile) for the blocks, or
    None for ComfyUI's plain block path; it may set the compute dtype (bf16 for FA3 / row-wise fp8)."""
    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {sorted(WEIGHT_DTYPES)}, got {weight_dtype!r}")
    sd, config, scaled = to_model_state_dict(sd)
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
        forced = None  # already scaled fp8: the weights stay as stored
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
    model.load_model_weights(sd, "")
    log.info("SteadyDancer: layout=%s dim=%d layers=%d weight dtype=%s compute=%s scaled_fp8=%s",
             layout, config["dim"], config["num_layers"], unet_dtype, manual_cast, scaled)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
    patcher.steadydancer_layout = layout
    if speed is not None:
        fast.apply(patcher, speed)
    return patcher


def load_steadydancer(path, weight_dtype="default", speed=None):
    sd, layout = read_checkpoint(path)
    return load_state_dict_model(sd, weight_dtype, layout=layout, speed=speed)
