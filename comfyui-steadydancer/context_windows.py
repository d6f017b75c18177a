"""Long videos: SteadyDancer sampling under ComfyUI core's context windows.

ComfyUI core (``comfy/context_windows.py``) splits the latent along time into overlapping windows,
evaluates the model on each and fuses the results (``IndexListContextHandler``; installed as
``model_options["context_handler"]`` and consulted by ``comfy.samplers.calc_cond_batch``, which is
what our guider calls, so text CFG, pose CFG with the negative poses and the pose window of steps
all work per window unchanged). This module keeps core's windows, schedules and fuse methods and
replaces the two parts that do not fit SteadyDancer at the pinned core commit:

* **What each window gets** (``get_resized_cond``). Core's generic rule slices a model condition
  only when it is a tensor of fewer than ``dim`` dimensions, so with Wan's time dim 2 it slices
  nothing and the model gets the full-length ``c_concat`` and pose latents next to a window of
  noise. Here the conditions are split by what they mean, by name:

  ============================  ==========================  ===================================
  model condition               per window                  why
  ============================  ==========================  ===================================
  ``c_concat`` [B,20,T,h,w]     slice ``[:, :, window]``    mask + image latent, one per frame
  ``sd_pose``  [B,16,T,h,w]     slice ``[:, :, window]``    the pose latent of each frame
                                                            (positive or negative poses: each
                                                            conditioning list has its own)
  ``sd_ref``, ``sd_pose_ref``   whole                       reference image / first pose: one
  [B,16,1,h,w]                                              latent frame that the model appends
                                                            after the window along time
  ``clip_fea``, ``sd_clip_pose``  whole                     CLIP of the reference / first pose
  ``c_crossattn``               whole                       text
  constants (strengths, ...)    whole
  ============================  ==========================  ===================================

  Any other condition of ComfyUI's noise-shaped kind (``CONDNoiseShape``) is sliced along time;
  every other condition is passed whole. A time-aligned condition whose length is not the
  latent's is an error, never silently passed.

  *The first-frame image condition.* ``c_concat`` holds the reference image's latent with its
  mask channels at 1 (known; core turns our ``concat_mask`` 0 into 1) at latent frame 0 and grey
  latents with mask 0 (to generate) after it. Slicing gives it to the window that holds frame 0
  only; a later window gets grey latents and mask 0 everywhere:
  nothing of it is pinned. The reference still reaches every window whole, as SteadyDancer's own
  appended reference frame (``sd_ref``) and its CLIP features. The WanVideoWrapper instead copies
  the frame-0 condition into the first frame of every window (``partial_img_emb[:, 0] =
  image_cond[:, 0]``), which is the right anchor for plain Wan I2V (its only view of the image),
  but for a dance it would declare the reference image, in the reference pose, to be the frame at
  each window's start, against the driving pose there: a snap back to the reference pose every
  window. SteadyDancer does not need that anchor for identity, so we do not pin.

* **The step** (``set_step``): core looks the current sigma up in the schedule with
  ``isclose`` and raises for samplers that evaluate between schedule points (dpm_2, dpmpp_2s,
  ...). We use the guider's rule (the step in progress is the last schedule entry not below the
  sigma), so every core sampler works. The timestep is per batch entry and is never sliced.

Frames: windows are given in video frames; latent frames are ``(frames - 1) // 4 + 1``, so a
window of 4n+1 frames is n+1 latent frames and an overlap of 4k frames is k latent frames.
"""

from __future__ import annotations

import logging

import torch

import comfy.conds
import comfy.context_windows as cw

from .guidance import step_of_sigma

log = logging.getLogger("steadydancer")

TIME_DIM = 2
#: model conditions with one entry per latent frame (sliced per window along TIME_DIM)
TIME_ALIGNED = ("c_concat", "sd_pose")
#: model conditions that are the same for every frame (passed whole to every window)
WHOLE = ("c_crossattn", "clip_fea", "sd_clip_pose", "sd_ref", "sd_pose_ref", "sd_pose_strength", "sd_pose_t_range")

SCHEDULES = (cw.ContextSchedules.STATIC_STANDARD, cw.ContextSchedules.UNIFORM_STANDARD, cw.ContextSchedules.UNIFORM_LOOPED, cw.ContextSchedules.BATCHED)
#: core's fuse methods but "relative" (its per-frame update indexes tensors with a list, which
#: torch deprecates: from 2.9 read as a tensor index, per its warning)
FUSE_METHODS = (cw.ContextFuseMethods.PYRAMID, cw.ContextFuseMethods.FLAT, cw.ContextFuseMethods.OVERLAP_LINEAR)

DEFAULT_WINDOW = 81  # frames: the official (and trained) length
DEFAULT_OVERLAP = 16  # frames: WanVideoWrapper's WanVideoContextOptions default (4 latent frames)
DEFAULT_FUSE = cw.ContextFuseMethods.PYRAMID  # core's default
DEFAULT_SCHEDULE = cw.ContextSchedules.STATIC_STANDARD


def latent_frames(frames: int) -> int:
    return (int(frames) - 1) // 4 + 1


def window_latents(window_frames: int, overlap_frames: int) -> tuple[int, int]:
    """(window, overlap) in latent frames for a window of 4n+1 frames and an overlap of 4k frames."""
    if window_frames < 5 or (window_frames - 1) % 4:
        raise ValueError(f"context window length must be 4n+1 frames, at least 5 (e.g. 81), got {window_frames}")
    if overlap_frames < 0 or overlap_frames % 4:
        raise ValueError(f"context window overlap must be a multiple of 4 frames (0, 4, ..., 16), got {overlap_frames}")
    length, overlap = latent_frames(window_frames), overlap_frames // 4
    if overlap >= length:
        raise ValueError(f"context window overlap ({overlap_frames} frames) must be shorter than the window ({window_frames} frames)")
    return length, overlap


class _LatentWindow(cw.IndexListContextWindow):
    """A window along the latent's time dim; a batch-dim request (the timestep) gets the whole.
    Indexes with a tuple: core's window builds a list index, which torch deprecates (from 2.9 read as
    a tensor index, per its warning)."""

    def _index(self):
        return (slice(None),) * self.dim + (self.index_list,)

    def get_tensor(self, full: torch.Tensor, device=None, dim=None) -> torch.Tensor:
        if dim is not None and dim != self.dim:
            return full.to(device) if device is not None else full
        out = full[self._index()]
        return out.to(device) if device is not None else out

    def add_window(self, full: torch.Tensor, to_add: torch.Tensor, dim=None) -> torch.Tensor:
        full[self._index()] += to_add
        return full


class SteadyDancerContextHandler(cw.IndexListContextHandler):
    def __init__(self, context_length: int, context_overlap: int, fuse_method: str = DEFAULT_FUSE, context_schedule: str = DEFAULT_SCHEDULE, context_stride: int = 1, closed_loop: bool = False):
        if context_schedule not in SCHEDULES:
            raise ValueError(f"unknown context schedule {context_schedule!r}; one of {', '.join(SCHEDULES)}")
        if fuse_method not in FUSE_METHODS:
            raise ValueError(f"unknown fuse method {fuse_method!r}; one of {', '.join(FUSE_METHODS)}")
        if context_length < 1 or not 0 <= context_overlap < context_length:
            raise ValueError(f"need 0 <= overlap < length (latent frames), got {context_overlap} and {context_length}")
        super().__init__(
            cw.get_matching_context_schedule(context_schedule),
            cw.get_matching_fuse_method(fuse_method),
            context_length=context_length,
            context_overlap=context_overlap,
            context_stride=context_stride,
            closed_loop=closed_loop,
            dim=TIME_DIM,
        )

    def set_step(self, timestep: torch.Tensor, model_options: dict):
        sigmas = model_options["transformer_options"]["sample_sigmas"]
        self._step = step_of_sigma(float(timestep.detach().float().flatten().max()), sigmas)[0]

    def get_context_windows(self, model, x_in: torch.Tensor, model_options: dict) -> list:
        return [_LatentWindow(w, dim=self.dim) for w in self.context_schedule.func(x_in.size(self.dim), self, model_options)]

    def get_resized_cond(self, cond_in, x_in: torch.Tensor, window, device=None):
        if cond_in is None:
            return None
        t = x_in.size(self.dim)
        out = []
        for entry in cond_in:
            for key in ("area", "mask"):
                if key in entry:
                    raise ValueError(f"SteadyDancer context windows: a conditioning with '{key}' (area/mask conditioning) is not supported")
            new = dict(entry)
            if "control" in entry:
                new["control"] = self.prepare_control_objects(entry["control"], device)
            model_conds = {}
            for name, c in entry["model_conds"].items():
                sliced = name in TIME_ALIGNED or (isinstance(c, comfy.conds.CONDNoiseShape) and name not in WHOLE)
                if sliced:
                    if c.cond.ndim <= self.dim or c.cond.size(self.dim) != t:
                        raise ValueError(f"SteadyDancer context windows: condition {name} has shape {tuple(c.cond.shape)}, expected {t} latent frames in dim {self.dim}")
                    c = c._copy_with(window.get_tensor(c.cond, device))
                elif device is not None and isinstance(getattr(c, "cond", None), torch.Tensor):
                    c = c._copy_with(c.cond.to(device))
                model_conds[name] = c
            new["model_conds"] = model_conds
            out.append(new)
        return out


def frame_windows(frames: int, window_frames: int, overlap_frames: int, schedule: str = DEFAULT_SCHEDULE, step: int = 0) -> list[list[int]]:
    """The latent-frame windows the handler uses for a video of ``frames`` frames (for reports/tests)."""
    length, overlap = window_latents(window_frames, overlap_frames)
    h = SteadyDancerContextHandler(length, overlap, context_schedule=schedule)
    h._step = step
    t = latent_frames(frames)
    if t <= length:
        return [list(range(t))]
    return h.context_schedule.func(t, h, {})


def apply_context_windows(model_patcher, window_frames: int = DEFAULT_WINDOW, overlap_frames: int = DEFAULT_OVERLAP, fuse_method: str = DEFAULT_FUSE, schedule: str = DEFAULT_SCHEDULE):
    """A clone of ``model_patcher`` that samples in context windows when the latent is longer than one."""
    length, overlap = window_latents(window_frames, overlap_frames)
    m = model_patcher.clone()
    m.model_options["context_handler"] = SteadyDancerContextHandler(length, overlap, fuse_method, schedule)
    cw.create_prepare_sampling_wrapper(m)  # memory estimate from one window, not the whole latent
    return m
