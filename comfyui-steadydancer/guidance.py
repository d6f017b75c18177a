"""SteadyDancer's three-way guidance as a ComfyUI guider.

The official sampler (``wan/image2video_dancer.py``, ``WanI2VDancer.generate``) evaluates, at
every step ``idx`` of ``steps``:

    v_c  = model(positive text,  pose latents)              # "cond"
    v_u  = model(negative text,  pose latents)              # text-unconditional
    v_p  = model(positive text,  negative-pose latents)     # pose-unconditional, only when
                                                            #   pose_start < idx/steps < pose_end
    inside the window:  v = v_u + cfg * (v_c - v_u) + pose_cfg * (v_c - v_p)
    outside:            v = v_u + cfg * (v_c - v_u)

with the official defaults (generate_dancer.py) ``sample_guide_scale`` = cfg = 5.0,
``condition_guide_scale`` = pose_cfg = 1.5, ``st_cond_cfg`` = pose_start = 0.1,
``end_cond_cfg`` = pose_end = 0.4 (strict inequalities, as upstream).

ComfyUI guiders combine *denoised* predictions (x0 = x - sigma * v for flow models). The
combination above has weights (1 - cfg) + (cfg + pose_cfg) + (-pose_cfg) = 1 on (v_u, v_c, v_p),
so applying the same weights to the denoised predictions gives exactly the denoised prediction of
the official v. The text part goes through ComfyUI's ``cfg_function`` so that CFG hooks
(``sampler_cfg_function``, post-CFG patches) keep working; the pose term is added after it.

Model calls: ``cfg == 1`` drops the text-negative evaluation (ComfyUI's cfg1 optimisation,
unless ``disable_cfg1_optimization`` is set) and ``pose_cfg == 0`` or a step outside the window
drops the negative-pose one; the remaining conditionings go to ``calc_cond_batch`` together.
The fast preset (cfg 1, pose_cfg 0) therefore costs one model evaluation per step.

``negative_pose`` may be left out (``None``) when pose guidance can never run
(``pose_guidance_possible``: pose_cfg 0 or an empty window); the node ``SteadyDancerGuider``
makes that input lazy, so ComfyUI then skips the nodes that would only compute it. Sampling with
pose guidance on and no negative poses is an error, never a silent fallback.

Step index: ComfyUI gives the guider a sigma, not a step number. The guider finds the step in
``transformer_options["sample_sigmas"]`` (set by ComfyUI's CFGGuider for every sampling run):
the step in progress is the last schedule entry not below the current sigma, so a sampler's
intermediate evaluations (Heun, DPM++ 2S, ...) count as the step they belong to. ``steps`` is
``len(sigmas) - 1``; with ``denoise < 1`` the fraction runs over the partial schedule that is
actually sampled.
"""

from __future__ import annotations

import logging
import math

import torch

import comfy.samplers

log = logging.getLogger("steadydancer")

DEFAULT_CFG = 5.0
DEFAULT_POSE_CFG = 1.5
DEFAULT_POSE_START = 0.1
DEFAULT_POSE_END = 0.4


def step_of_sigma(sigma: float, sigmas: torch.Tensor) -> tuple[int, int]:
    """(index of the step in progress, number of steps) for ``sigma`` in a descending schedule."""
    s = sigmas.detach().float().cpu().flatten()
    steps = int(s.numel()) - 1
    if steps < 1:
        raise ValueError("the sampling schedule has no steps")
    tol = 1e-5 * max(abs(sigma), 1e-8)
    idx = int((s[:-1] >= sigma - tol).sum().item()) - 1
    return min(max(idx, 0), steps - 1), steps


def pose_window_active(step: int, steps: int, pose_start: float, pose_end: float) -> bool:
    """Official rule: pose guidance runs while pose_start < step/steps < pose_end."""
    frac = step / steps
    return pose_start < frac < pose_end


def pose_guidance_possible(pose_cfg: float, pose_start: float, pose_end: float) -> bool:
    """Whether any step can run pose guidance (and so needs the negative poses): pose_cfg is not
    0 and the window is not empty (pose_start < pose_end; the official inequalities are strict)."""
    return float(pose_cfg) != 0.0 and float(pose_start) < float(pose_end)


def official_combination(cond, uncond, uncond_pose, cfg: float, pose_cfg: float, pose_active: bool):
    """The official formula on any three predictions (velocities or denoised)."""
    out = uncond + cfg * (cond - uncond)
    if pose_active:
        out = out + pose_cfg * (cond - uncond_pose)
    return out


class SteadyDancerCFGGuider(comfy.samplers.CFGGuider):
    """CFGGuider with SteadyDancer's text + pose guidance (see module docstring)."""

    def __init__(self, model_patcher):
        super().__init__(model_patcher)
        self.cfg = DEFAULT_CFG
        self.pose_cfg = DEFAULT_POSE_CFG
        self.pose_start = DEFAULT_POSE_START
        self.pose_end = DEFAULT_POSE_END
        self._warned_no_sigmas = False

    def set_conds(self, positive, negative, negative_pose=None):
        """``negative_pose`` may be None when pose guidance is off (see pose_guidance_possible)."""
        if negative_pose is None:
            self.original_conds.pop("negative_pose", None)
        conds = {"positive": positive, "negative": negative, "negative_pose": negative_pose}
        self.inner_set_conds({k: v for k, v in conds.items() if v is not None})

    def set_cfg(self, cfg: float, pose_cfg: float = DEFAULT_POSE_CFG, pose_start: float = DEFAULT_POSE_START, pose_end: float = DEFAULT_POSE_END):
        for name, v in (("cfg", cfg), ("pose_cfg", pose_cfg), ("pose_start", pose_start), ("pose_end", pose_end)):
            if not math.isfinite(v):
                raise ValueError(f"SteadyDancerGuider: {name} must be a finite number, got {v}")
        if not 0.0 <= pose_start <= 1.0 or not 0.0 <= pose_end <= 1.0:
            raise ValueError(f"SteadyDancerGuider: pose_start and pose_end are fractions of the steps (0..1), got {pose_start} and {pose_end}")
        if pose_start > pose_end:
            raise ValueError(f"SteadyDancerGuider: pose_start ({pose_start}) is after pose_end ({pose_end})")
        self.cfg, self.pose_cfg, self.pose_start, self.pose_end = float(cfg), float(pose_cfg), float(pose_start), float(pose_end)

    def pose_active_at(self, timestep, model_options) -> bool:
        if self.pose_cfg == 0.0:
            return False
        sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        if sigmas is None:
            if not self._warned_no_sigmas:
                log.warning("SteadyDancerGuider: no sampling schedule in the model options; pose guidance is off for this call")
                self._warned_no_sigmas = True
            return False
        sigma = float(timestep.detach().float().flatten().max().item())
        step, steps = step_of_sigma(sigma, sigmas)
        return pose_window_active(step, steps, self.pose_start, self.pose_end)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        positive = self.conds.get("positive")
        negative = self.conds.get("negative")
        negative_pose = self.conds.get("negative_pose")
        pose_on = self.pose_active_at(timestep, model_options)
        if pose_on and negative_pose is None:
            raise ValueError(f"SteadyDancerGuider: pose guidance is on at this step (pose_cfg {self.pose_cfg}, window {self.pose_start}..{self.pose_end}) but no negative_pose conditioning was given")
        skip_text_neg = math.isclose(self.cfg, 1.0) and not model_options.get("disable_cfg1_optimization", False)
        uncond = None if skip_text_neg else negative
        conds = [positive, uncond, negative_pose if pose_on else None]
        out = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, model_options)
        denoised = comfy.samplers.cfg_function(self.inner_model, out[0], out[1], self.cfg, x, timestep, model_options=model_options, cond=positive, uncond=uncond)
        if pose_on:
            denoised = denoised + self.pose_cfg * (out[0] - out[2])
        return denoised
