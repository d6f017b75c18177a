"""Node ``SteadyDancerGuider``: SteadyDancer's three-way guidance for ComfyUI's custom samplers.

Inputs (names and defaults from the official ``generate_dancer.py``): ``model``; ``positive``,
``negative`` (text-negative) from the SteadyDancer conditioning node and ``negative_pose``
(positive text + negative-pose latents, from ``SteadyDancerNegativePoseConditioning``); ``cfg`` = ``--sample_guide_scale`` 5.0; ``pose_cfg`` =
``--condition_guide_scale`` 1.5 (the README's example command uses 1.0); ``pose_start`` =
``--st_cond_cfg`` 0.1; ``pose_end`` = ``--end_cond_cfg`` 0.4. Output: a GUIDER for
``SamplerCustomAdvanced``. The maths is in ``guidance.py``.

``negative_pose`` is an optional LAZY input (ComfyUI's ``lazy=True`` + ``check_lazy_status``):
the guider asks ComfyUI for it only when pose guidance can run (pose_cfg != 0 and pose_start <
pose_end), so with pose_cfg 0 ComfyUI never executes the nodes that only feed it (negative-pose
augmentation, rendering and VAE encode). Pose guidance on and no negative_pose (unconnected, or a
conditioning node that made none) is an error that names the node to connect.

Workflow-level settings (for the ``pipeline`` workflow; all core nodes):

Quality preset (the official generate defaults):
  * ``ModelSamplingSD3``: ``shift`` = 5.0, or 3.0 when the size is 832x480 or 480x832 (the
    official ``_validate_args`` rule; every other size keeps 5.0). ``default_shift(w, h)`` below
    is that rule. MODEL -> ModelSamplingSD3 -> BasicScheduler and -> SteadyDancerGuider.
  * ``BasicScheduler``: ``scheduler`` "flow_unipc_official" (the official sigmas: linspace(0.999, 0)
    shifted), ``steps`` 40 (official i2v default), ``denoise`` 1.0.
  * ``KSamplerSelect``: ``sampler_name`` "flow_unipc_bh2" (the official FlowUniPCMultistepScheduler:
    flow-matching UniPC bh2 with x0 prediction at integer timesteps; ``flow_unipc.py``).
  * ``SteadyDancerGuider``: cfg 5.0, pose_cfg 1.5, pose_start 0.1, pose_end 0.4.
  * ``RandomNoise`` (``noise_seed``) + ``SamplerCustomAdvanced`` (noise, guider, sampler, sigmas,
    latent_image = the conditioning node's ``latent``); decode its ``output`` with ``VAEDecode``.
Fast preset (the step-distilled lightx2v LoRA, as in the official SteadyDancer ComfyUI examples
``workflows/wanvideo_SteadyDancer_example_0{3,4}.json``: 4 steps, cfg 1, shift 5, LoRA strength 1):
  * ``LoraLoaderModelOnly``: ``lora_name`` "lightx2v_I2V_14B_480p_cfg_step_distill_rank64_bf16.safetensors"
    (the manifest's file name), ``strength_model`` 1.0, applied to the SteadyDancer MODEL before
    ``ModelSamplingSD3``.
  * ``ModelSamplingSD3``: ``shift`` 5.0 at every size (the official examples keep 5 at 832x480).
  * ``BasicScheduler``: "simple", ``steps`` 4, ``denoise`` 1.0.
  * ``KSamplerSelect``: "euler" (the examples use WanVideoWrapper's own "dpm++_sde" scheduler,
    which core does not have; core's flow Euler is the deterministic equivalent choice).
  * ``SteadyDancerGuider``: cfg 1.0, pose_cfg 0.0 (window values unused): one model evaluation per
    step, no negative-pose latents needed: the lazy ``negative_pose`` input is never requested, so
    its upstream nodes do not run.
"""

from __future__ import annotations

from comfy_api.latest import io

from .guidance import DEFAULT_CFG, DEFAULT_POSE_CFG, DEFAULT_POSE_END, DEFAULT_POSE_START, SteadyDancerCFGGuider, pose_guidance_possible

# check_lazy_status's default for negative_pose: ComfyUI passes an unevaluated linked lazy input
# as None and leaves an unconnected optional input out, so this tells the two apart.
_UNCONNECTED = object()


def default_shift(width: int, height: int) -> float:
    """Official flow-shift rule for the quality preset: 3.0 at 832x480 / 480x832, else 5.0."""
    return 3.0 if {int(width), int(height)} == {832, 480} else 5.0


class SteadyDancerGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerGuider",
            display_name="SteadyDancer Guider (text + pose CFG)",
            category="SteadyDancer",
            description="SteadyDancer's official three-way guidance: text CFG at every step, pose CFG against the negative poses while pose_start < step/steps < pose_end.",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive", tooltip="positive text + pose latents"),
                io.Conditioning.Input("negative", tooltip="negative text + pose latents"),
                io.Conditioning.Input(
                    "negative_pose", optional=True, lazy=True, tooltip="positive text + negative-pose latents (SteadyDancer Negative Pose Conditioning); only evaluated when pose_cfg != 0"
                ),
                io.Float.Input("cfg", default=DEFAULT_CFG, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="text guidance scale (official --sample_guide_scale); 1 skips the negative text"),
                io.Float.Input("pose_cfg", default=DEFAULT_POSE_CFG, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="pose guidance scale (official --condition_guide_scale); 0 turns it off"),
                io.Float.Input("pose_start", default=DEFAULT_POSE_START, min=0.0, max=1.0, step=0.01, tooltip="pose guidance runs while pose_start < step/steps (official --st_cond_cfg)"),
                io.Float.Input("pose_end", default=DEFAULT_POSE_END, min=0.0, max=1.0, step=0.01, tooltip="... and step/steps < pose_end (official --end_cond_cfg)"),
            ],
            outputs=[io.Guider.Output()],
        )

    @classmethod
    def check_lazy_status(cls, pose_cfg, pose_start, pose_end, negative_pose=_UNCONNECTED, **_) -> list[str]:
        if negative_pose is None and pose_guidance_possible(pose_cfg, pose_start, pose_end):
            return ["negative_pose"]
        return []

    @classmethod
    def execute(cls, model, positive, negative, negative_pose=None, cfg=DEFAULT_CFG, pose_cfg=DEFAULT_POSE_CFG, pose_start=DEFAULT_POSE_START, pose_end=DEFAULT_POSE_END) -> io.NodeOutput:
        if negative_pose is None and pose_guidance_possible(pose_cfg, pose_start, pose_end):
            raise ValueError(
                f"SteadyDancerGuider: pose_cfg is {pose_cfg} (pose guidance on in {pose_start}..{pose_end}) but there is no negative_pose: "
                "connect SteadyDancer Negative Pose Conditioning (or SteadyDancer Conditioning's negative_pose with its negative_pose_frames connected) "
                "to negative_pose, or set pose_cfg to 0"
            )
        guider = SteadyDancerCFGGuider(model)
        guider.set_conds(positive, negative, negative_pose)
        guider.set_cfg(cfg, pose_cfg, pose_start, pose_end)
        return io.NodeOutput(guider)


NODES = [SteadyDancerGuider]
