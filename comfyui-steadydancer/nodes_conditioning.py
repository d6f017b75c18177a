"""SteadyDancerConditioning (+ SteadyDancerNegativePoseConditioning): everything the SteadyDancer
model consumes, packed into CONDITIONING.

CONTRACT (the guider ``SteadyDancerGuider`` and the workflows rely on it)
=========================================================================
Inputs: ``positive`` / ``negative`` text CONDITIONING, ``vae``, ``clip_vision_ref``
(CLIP_VISION_OUTPUT of the reference image), ``clip_vision_pose`` (CLIP_VISION_OUTPUT of the
first *positive* pose frame), ``reference_image`` (IMAGE, 1 frame), ``pose_frames`` (IMAGE,
>= ``length`` frames), ``negative_pose_frames`` (IMAGE, >= ``length`` frames; optional), ``width``,
``height`` (multiples of 16), ``length`` (4n+1 frames), ``pose_strength_spatial``,
``pose_strength_temporal`` (1.0 = official), ``pose_start_percent`` / ``pose_end_percent``
(0.0 / 1.0 = official: pose active at every step).

Outputs (in this order): ``positive``, ``negative``, ``negative_pose`` (CONDITIONING) and
``latent`` (LATENT).

* ``positive``      = positive text  + positive pose latents   (official ``arg_c``)
* ``negative``      = negative text  + positive pose latents   (official ``arg_null_context``)
* ``negative_pose`` = positive text  + NEGATIVE pose latents   (official ``arg_null_condition``)
* ``latent``        = ``{"samples": zeros[1, 16, T, H, W]}``

``negative_pose`` is None when ``negative_pose_frames`` is not connected. The negative poses only
feed the guider's pose-CFG branch, so the workflows build ``negative_pose`` in its own node,
``SteadyDancerNegativePoseConditioning`` (inputs: this node's ``positive``, ``vae``,
``negative_pose_frames``, ``width``, ``height``, ``length``): it copies every entry of
``positive`` and replaces only ``steadydancer_pose_latent`` by the negative-pose latents, which
is exactly the ``negative_pose`` above (same tensors, bit for bit). The guider's lazy
``negative_pose`` input then runs that node, and the negative-pose rendering before it, only when
pose guidance is on (pose_cfg != 0); the fast preset skips one of the three length-frame VAE
encodes.

with ``T = (length - 1) // 4 + 1``, ``H = height // 8``, ``W = width // 8``. Every entry of all
three CONDITIONING lists carries these keys (tensors on the intermediate device, float32, *raw*
VAE latents: the model's ``extra_conds`` applies ``process_latent_in``):

==================================  =====================================  =====================
key                                 value                                  model kwarg
==================================  =====================================  =====================
``concat_latent_image``             [1, 16, T, H, W] VAE latent of the     ``c_concat`` (ComfyUI
                                    reference image followed by grey         core, with the mask:
                                    (0 in [-1,1]) frames — official ``y``    [B, 20, T, H, W])
``concat_mask``                     [1, 1, T, H, W]: 0 on latent frame 0,  (inside ``c_concat``)
                                    1 elsewhere (ComfyUI convention)
``clip_vision_output``              CLIP_VISION_OUTPUT of the reference    ``clip_fea``
                                    image (penultimate_hidden_states         [B, 257, 1280]
                                    [1, 257, 1280]) — official clip_fea_x
``steadydancer_clip_pose``          CLIP_VISION_OUTPUT of the first pose   ``sd_clip_pose``
                                    frame — official ``clip_fea_c``          [B, 257, 1280]
``steadydancer_ref_latent``         [1, 16, 1, H, W] VAE latent of the     ``sd_ref``
                                    reference image (official ``ref_x`` is   [B, 16, 1, H, W]
                                    built from it in the model)
``steadydancer_pose_ref_latent``    [1, 16, 1, H, W] VAE latent of the     ``sd_pose_ref``
                                    first pose frame (official ``ref_c``)    [B, 16, 1, H, W]
``steadydancer_pose_latent``        [1, 16, T, H, W] VAE latent of the     ``sd_pose``
                                    pose frames (positive pose in            [B, 16, T, H, W]
                                    ``positive``/``negative``, negative
                                    pose in ``negative_pose``) — official
                                    ``condition`` / ``condition_null``
``steadydancer_pose_strength``      (spatial: float, temporal: float)      ``sd_pose_strength``
``steadydancer_pose_percent``       (start: float, end: float)             ``sd_pose_t_range``
                                                                             (model timesteps)
==================================  =====================================  =====================

The guider only chooses which of the three lists it evaluates; it never edits these keys.
Pose frames are resized to width×height with bicubic interpolation and no crop (the official
generate resizes every pose frame to the reference size, then to (h, w) with bicubic).
"""

import torch

import comfy.model_management
import comfy.utils
import node_helpers
from comfy_api.latest import io

from . import vae_fast

KEY_CLIP_POSE = "steadydancer_clip_pose"
KEY_REF = "steadydancer_ref_latent"
KEY_POSE_REF = "steadydancer_pose_ref_latent"
KEY_POSE = "steadydancer_pose_latent"
KEY_STRENGTH = "steadydancer_pose_strength"
KEY_PERCENT = "steadydancer_pose_percent"


def _resize(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """IMAGE [N, h, w, C] in [0, 1] → [N, height, width, 3], bicubic, no crop (as official)."""
    out = comfy.utils.common_upscale(images[..., :3].movedim(-1, 1), width, height, "bicubic", "disabled")
    return out.movedim(1, -1).clamp(0.0, 1.0)


def _check_frames(name: str, frames: torch.Tensor, length: int, node: str = "SteadyDancerConditioning") -> torch.Tensor:
    if frames.ndim != 4:
        raise ValueError(f"{node}: {name} must be an IMAGE batch [N, H, W, C], got shape {tuple(frames.shape)}")
    if frames.shape[0] < length:
        raise ValueError(f"{node}: {name} has {frames.shape[0]} frames but length={length} needs at least {length}; lower length or give more pose frames")
    return frames[:length]


def _check_size(width: int, height: int, length: int, node: str = "SteadyDancerConditioning") -> None:
    if width % 16 or height % 16 or width < 16 or height < 16:
        raise ValueError(f"{node}: width and height must be positive multiples of 16, got {width}x{height}")
    if length < 1 or (length - 1) % 4:
        raise ValueError(f"{node}: length must be 4n+1 frames (e.g. 29, 33, 81), got {length}")


def negative_pose_conditioning(positive, vae, negative_pose_frames, width, height, length, node: str = "SteadyDancerNegativePoseConditioning"):
    """``negative_pose`` from the SteadyDancer ``positive`` conditioning: every entry copied with
    ``steadydancer_pose_latent`` replaced by the VAE latents of the negative pose frames."""
    _check_size(width, height, length, node)
    if not positive or any(KEY_POSE not in entry[1] for entry in positive):
        raise ValueError(f"{node}: positive must be the positive output of SteadyDancer Conditioning (its entries carry {KEY_POSE})")
    neg_pose = _resize(_check_frames("negative_pose_frames", negative_pose_frames, length, node), width, height)
    latent = vae_fast.encode(vae, neg_pose)
    for entry in positive:
        if tuple(entry[1][KEY_POSE].shape) != tuple(latent.shape):
            raise ValueError(
                f"{node}: the negative pose latents have shape {tuple(latent.shape)} but the positive pose latents {tuple(entry[1][KEY_POSE].shape)}: "
                "give this node the width, height and length of SteadyDancer Conditioning"
            )
    return node_helpers.conditioning_set_values(positive, {KEY_POSE: latent})


def build_conditioning(
    positive,
    negative,
    vae,
    clip_vision_ref,
    clip_vision_pose,
    reference_image,
    pose_frames,
    negative_pose_frames=None,
    width=512,
    height=512,
    length=33,
    pose_strength_spatial=1.0,
    pose_strength_temporal=1.0,
    pose_start_percent=0.0,
    pose_end_percent=1.0,
):
    _check_size(width, height, length)
    if not 0.0 <= pose_start_percent <= pose_end_percent <= 1.0:
        raise ValueError("SteadyDancerConditioning: need 0 <= pose_start_percent <= pose_end_percent <= 1")
    if reference_image.ndim != 4 or reference_image.shape[0] < 1:
        raise ValueError("SteadyDancerConditioning: reference_image must be an IMAGE with at least one frame")
    pose = _check_frames("pose_frames", pose_frames, length)
    if negative_pose_frames is not None:
        _check_frames("negative_pose_frames", negative_pose_frames, length)  # before any encode

    ref = _resize(reference_image[:1], width, height)
    pose = _resize(pose, width, height)

    # official y: reference image then zeros (grey 0.5 in [0, 1]) for the remaining frames
    # (vae_fast: bitwise vae.encode of that video, chunked; its grey tail's fixed point repeated)
    # ref_latent and pose_ref_latent: the one-frame encodes of ref and pose[:1], taken bit for bit
    # from these two encodes' first chunk (frame 0 alone) instead of two more encoder passes
    ref_info, pose_info = {"first": None}, {"first": None}
    concat_latent = vae_fast.encode_ref_then_fill(vae, ref, length, 0.5, info=ref_info)
    t_lat = concat_latent.shape[2]
    mask = torch.ones((1, 1, t_lat, concat_latent.shape[-2], concat_latent.shape[-1]), dtype=concat_latent.dtype, device=concat_latent.device)
    mask[:, :, :1] = 0.0

    pose_latent = vae_fast.encode(vae, pose, info=pose_info)
    ref_latent, pose_ref_latent = ref_info["first"], pose_info["first"]

    shared = {
        "concat_latent_image": concat_latent,
        "concat_mask": mask,
        "clip_vision_output": clip_vision_ref,
        KEY_CLIP_POSE: clip_vision_pose,
        KEY_REF: ref_latent,
        KEY_POSE_REF: pose_ref_latent,
        KEY_STRENGTH: (float(pose_strength_spatial), float(pose_strength_temporal)),
        KEY_PERCENT: (float(pose_start_percent), float(pose_end_percent)),
    }
    pos = node_helpers.conditioning_set_values(positive, {**shared, KEY_POSE: pose_latent})
    neg = node_helpers.conditioning_set_values(negative, {**shared, KEY_POSE: pose_latent})
    neg_p = None if negative_pose_frames is None else negative_pose_conditioning(pos, vae, negative_pose_frames, width, height, length, "SteadyDancerConditioning")
    latent = torch.zeros([1, 16, t_lat, height // 8, width // 8], device=comfy.model_management.intermediate_device())
    return pos, neg, neg_p, {"samples": latent}


class SteadyDancerConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        strength = lambda name: io.Float.Input(name, default=1.0, min=0.0, max=10.0, step=0.01)  # noqa: E731
        percent = lambda name, d: io.Float.Input(name, default=d, min=0.0, max=1.0, step=0.01)  # noqa: E731
        return io.Schema(
            node_id="SteadyDancerConditioning",
            display_name="SteadyDancer Conditioning",
            category="SteadyDancer",
            inputs=[
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                io.Vae.Input("vae"),
                io.ClipVisionOutput.Input("clip_vision_ref", tooltip="CLIP vision of the reference image"),
                io.ClipVisionOutput.Input("clip_vision_pose", tooltip="CLIP vision of the first pose frame"),
                io.Image.Input("reference_image"),
                io.Image.Input("pose_frames"),
                io.Image.Input(
                    "negative_pose_frames",
                    optional=True,
                    tooltip="optional: without it negative_pose is empty; the workflows use SteadyDancer Negative Pose Conditioning instead, which runs only when pose guidance is on",
                ),
                io.Int.Input("width", default=512, min=16, max=4096, step=16),
                io.Int.Input("height", default=512, min=16, max=4096, step=16),
                io.Int.Input("length", default=33, min=1, max=1997, step=4),
                strength("pose_strength_spatial"),
                strength("pose_strength_temporal"),
                percent("pose_start_percent", 0.0),
                percent("pose_end_percent", 1.0),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive"),
                io.Conditioning.Output(display_name="negative"),
                io.Conditioning.Output(display_name="negative_pose", tooltip="empty unless negative_pose_frames is connected"),
                io.Latent.Output(display_name="latent"),
            ],
        )

    @classmethod
    def execute(cls, **kw) -> io.NodeOutput:
        return io.NodeOutput(*build_conditioning(**kw))


class SteadyDancerNegativePoseConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerNegativePoseConditioning",
            display_name="SteadyDancer Negative Pose Conditioning",
            category="SteadyDancer",
            description="The guider's negative_pose (positive text + negative-pose latents) for pose CFG. The guider asks for it only when pose_cfg != 0, so with pose CFG off this node and the negative-pose nodes before it do not run.",
            inputs=[
                io.Conditioning.Input("positive", tooltip="the positive output of SteadyDancer Conditioning"),
                io.Vae.Input("vae"),
                io.Image.Input("negative_pose_frames", tooltip="the rendered negative poses (SteadyDancer Negative Poses -> SteadyDancer Pose Render)"),
                io.Int.Input("width", default=512, min=16, max=4096, step=16, tooltip="as in SteadyDancer Conditioning"),
                io.Int.Input("height", default=512, min=16, max=4096, step=16, tooltip="as in SteadyDancer Conditioning"),
                io.Int.Input("length", default=33, min=1, max=1997, step=4, tooltip="as in SteadyDancer Conditioning"),
            ],
            outputs=[io.Conditioning.Output(display_name="negative_pose")],
        )

    @classmethod
    def execute(cls, positive, vae, negative_pose_frames, width, height, length) -> io.NodeOutput:
        return io.NodeOutput(negative_pose_conditioning(positive, vae, negative_pose_frames, width, height, length))


NODES = [SteadyDancerConditioning, SteadyDancerNegativePoseConditioning]
