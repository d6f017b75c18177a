"""Node ``SteadyDancerSaveVideo``: a fast h264 mp4 save (the work is in ``video_io.py``).

``SteadyDancerSaveVideo`` takes the VIDEO of core's CreateVideo (frames, fps, audio) like core's
SaveVideo and answers with the same UI output (``ui.PreviewVideo`` of one ``SavedResult`` in the
output folder: ``{"images": [{filename, subfolder, type: "output"}], "animated": [true]}`` in
/history), so the API, the UI and the job handler (src/comfy/outputs.ts) find the file as before.
It writes mp4/h264 only (core's format/codec choices have no other value it supports either) with a
``preset``/``crf`` pair instead.
"""

from __future__ import annotations

import os

import folder_paths
from comfy.cli_args import args
from comfy_api.latest import io, ui

from .video_io import CRF_MAX, CRF_MIN, DEFAULT_CRF, DEFAULT_PRESET, PRESETS, check_frames, check_options, write_mp4


class SteadyDancerSaveVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerSaveVideo",
            display_name="SteadyDancer Save Video (fast mp4)",
            category="SteadyDancer",
            description="Save a video as an h264 yuv420p mp4 in the output folder, like core's Save Video, encoded faster (x264 frame threads, a faster preset at a quality-matched crf).",
            inputs=[
                io.Video.Input("video", tooltip="the video to save (e.g. from Create Video)"),
                io.String.Input("filename_prefix", default="steadydancer/dance", tooltip="as core's Save Video: may include a subfolder and %date:…% formatting"),
                io.Combo.Input("preset", options=list(PRESETS), default=DEFAULT_PRESET, tooltip="x264 preset: faster ones encode sooner at the same crf but give bigger files"),
                io.Int.Input("crf", default=DEFAULT_CRF, min=CRF_MIN, max=CRF_MAX, tooltip="x264 constant rate factor: lower is better quality and a bigger file (core's Save Video: medium, 23)"),
            ],
            outputs=[],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, video, filename_prefix, preset, crf) -> io.NodeOutput:
        check_options(preset, crf)
        c = video.get_components()
        _, height, width = check_frames(c.images)
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, folder_paths.get_output_directory(), width, height)
        metadata = None
        if not args.disable_metadata:  # as core's SaveVideo
            metadata = dict(cls.hidden.extra_pnginfo or {})
            if cls.hidden.prompt is not None:
                metadata["prompt"] = cls.hidden.prompt
            metadata = metadata or None
        file = f"{filename}_{counter:05}_.mp4"
        write_mp4(os.path.join(folder, file), c.images, c.frame_rate, preset=preset, crf=crf, audio=c.audio, metadata=metadata)
        return io.NodeOutput(ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]))


NODES = [SteadyDancerSaveVideo]
