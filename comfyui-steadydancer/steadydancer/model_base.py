"""ComfyUI model_base / model config for SteadyDancer: turns conditioning keys into model kwargs.

See ``nodes_conditioning.py`` for the keys and shapes (the contract with the guider).
"""

import torch

import comfy.conds
import comfy.model_base
import comfy.supported_models

from .model import SteadyDancerWanModel

COND_KEYS = {  # conditioning key → model kwarg (latents go through process_latent_in)
    "steadydancer_pose_latent": "sd_pose",
    "steadydancer_ref_latent": "sd_ref",
    "steadydancer_pose_ref_latent": "sd_pose_ref",
}


class SteadyDancerWAN(comfy.model_base.WAN21):
    def __init__(self, model_config, model_type=comfy.model_base.ModelType.FLOW, device=None):
        comfy.model_base.BaseModel.__init__(self, model_config, model_type, device=device, unet_model=SteadyDancerWanModel)
        self.image_to_video = True

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)
        for key, arg in COND_KEYS.items():
            v = kwargs.get(key)
            if v is not None:
                out[arg] = comfy.conds.CONDRegular(self.process_latent_in(v))
        clip_pose = kwargs.get("steadydancer_clip_pose")
        if clip_pose is not None:
            out["sd_clip_pose"] = comfy.conds.CONDRegular(clip_pose.penultimate_hidden_states)
        strength = kwargs.get("steadydancer_pose_strength")
        if strength is not None:
            out["sd_pose_strength"] = comfy.conds.CONDConstant(tuple(float(s) for s in strength))
        percent = kwargs.get("steadydancer_pose_percent")
        if percent is not None and tuple(percent) != (0.0, 1.0):
            ms = self.model_sampling
            to_t = lambda p: float(ms.timestep(torch.tensor(float(ms.percent_to_sigma(p)))))  # noqa: E731
            out["sd_pose_t_range"] = comfy.conds.CONDConstant((to_t(percent[0]), to_t(percent[1])))
        return out


class SteadyDancerConfig(comfy.supported_models.WAN21_I2V):
    """Model config: Wan2.1 I2V settings (latent format, shift), our model_base."""

    unet_config = {}  # never matched by ComfyUI's detection; built by our loader from the weights

    def get_model(self, state_dict, prefix="", device=None):
        return SteadyDancerWAN(self, device=device)
