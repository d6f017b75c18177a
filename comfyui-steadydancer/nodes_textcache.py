"""Node ``SteadyDancerTextEncodeCached``: prompt -> Wan text conditioning through an on-disk cache.

On a cache hit the text encoder is neither loaded nor read (only its sha256 is needed, memoised
or given). See ``text_cache.py`` for the key, the file format and the cache directory
(``$STEADYDANCER_TEXT_CACHE``). Outputs ``positive`` and ``negative`` CONDITIONING, as two
CLIPTextEncode nodes on a CLIPLoader(type "wan") would give.
"""

from __future__ import annotations

import folder_paths
from comfy_api.latest import io

from .text_cache import CachedTextEncoder

# The official i2v negative prompt (wan/configs: "镜头晃动，" + the shared negative prompt).
OFFICIAL_NEGATIVE_PROMPT = (
    "镜头晃动，色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
# Known Wan umt5-xxl file names, offered even when absent so that a workflow naming one passes
# validation and a missing file gets our error (with the download command) instead.
KNOWN_ENCODERS = ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "umt5_xxl_fp16.safetensors")


def _encoder_choices():
    found = folder_paths.get_filename_list("text_encoders")
    return list(found) + [n for n in KNOWN_ENCODERS if n not in found]


def _resolve(name: str) -> str | None:
    return folder_paths.get_full_path("text_encoders", name)


class SteadyDancerTextEncodeCached(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerTextEncodeCached",
            display_name="SteadyDancer Text Encode (cached)",
            category="SteadyDancer",
            description="Encodes the prompts with the Wan umt5 text encoder once and keeps the result on disk keyed by (prompt, encoder sha256); later runs never load the encoder.",
            inputs=[
                io.Combo.Input("text_encoder", options=_encoder_choices(), default=KNOWN_ENCODERS[0]),
                io.String.Input("positive_prompt", multiline=True, default="a person dancing"),
                io.String.Input("negative_prompt", multiline=True, default=OFFICIAL_NEGATIVE_PROMPT),
                io.String.Input("encoder_sha256", default="", optional=True, tooltip="sha256 of the encoder file when known (e.g. from the model manifest); empty: hash the file once and remember it"),
            ],
            outputs=[io.Conditioning.Output(display_name="positive"), io.Conditioning.Output(display_name="negative")],
        )

    @classmethod
    def execute(cls, text_encoder, positive_prompt, negative_prompt, encoder_sha256="") -> io.NodeOutput:
        path = _resolve(text_encoder)
        if path is None and not encoder_sha256:
            dirs = ", ".join(folder_paths.get_folder_paths("text_encoders"))
            raise FileNotFoundError(f"text encoder {text_encoder!r} is not in the text_encoders folders ({dirs}) and no encoder_sha256 was given; fetch the models with `steadydancer models download`")
        enc = CachedTextEncoder(path, encoder_sha256 or None)
        return io.NodeOutput(enc.encode(positive_prompt), enc.encode(negative_prompt))


NODES = [SteadyDancerTextEncodeCached]
