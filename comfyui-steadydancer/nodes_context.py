"""Node ``SteadyDancerContextWindows``: sample long dance videos in overlapping windows.

MODEL in, MODEL out (put it before ``ModelSamplingSD3`` / the guider). The model samples in
windows of ``window_length`` frames overlapping by ``overlap`` frames whenever the latent is longer
than one window; a video that fits one window samples exactly as without the node. What each
window receives is described in ``context_windows.py``.
"""

from __future__ import annotations

from comfy_api.latest import io

from .context_windows import DEFAULT_FUSE, DEFAULT_OVERLAP, DEFAULT_SCHEDULE, DEFAULT_WINDOW, FUSE_METHODS, SCHEDULES, apply_context_windows


class SteadyDancerContextWindows(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerContextWindows",
            display_name="SteadyDancer Context Windows (long videos)",
            category="SteadyDancer",
            description="Sample videos longer than one window in overlapping windows (ComfyUI core's context "
            "windows, with SteadyDancer's conditioning split per window). No effect when the video "
            "fits one window.",
            inputs=[
                io.Model.Input("model"),
                io.Int.Input("window_length", default=DEFAULT_WINDOW, min=5, max=1997, step=4, tooltip="frames per window, 4n+1 (81: the length SteadyDancer was trained on)"),
                io.Int.Input("overlap", default=DEFAULT_OVERLAP, min=0, max=1992, step=4, tooltip="frames shared by neighbouring windows, a multiple of 4"),
                io.Combo.Input("fuse_method", options=list(FUSE_METHODS), default=DEFAULT_FUSE, tooltip="how overlapping windows are blended (core's fuse methods)"),
                io.Combo.Input("schedule", options=list(SCHEDULES), default=DEFAULT_SCHEDULE, tooltip="how the windows are laid out (core's schedules)"),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, window_length, overlap, fuse_method, schedule) -> io.NodeOutput:
        return io.NodeOutput(apply_context_windows(model, window_length, overlap, fuse_method, schedule))


NODES = [SteadyDancerContextWindows]
