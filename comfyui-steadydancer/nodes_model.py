"""SteadyDancerModelLoader: a SteadyDancer file from diffusion_models → a ComfyUI MODEL."""

import folder_paths
from comfy_api.latest import io

from .steadydancer.convert import KNOWN_HEADS
from .steadydancer import fast
from .steadydancer.loading import WEIGHT_DTYPES, load_steadydancer

_KNOWN = ", ".join(f"{d} → {h}" for d, h in sorted(KNOWN_HEADS.items()))


class SteadyDancerModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerModelLoader",
            display_name="SteadyDancer Model Loader",
            category="SteadyDancer",
            inputs=[
                io.Combo.Input("model_name", options=folder_paths.get_filename_list("diffusion_models"), tooltip="SteadyDancer checkpoint: official, Kijai fp16/bf16 or fp8_e4m3fn_scaled_KJ"),
                io.Combo.Input(
                    "weight_dtype",
                    options=list(WEIGHT_DTYPES),
                    default="default",
                    tooltip="default keeps the file's precision (scaled fp8 stays fp8, its high-precision layers stay as stored); fp8_* stores weights in fp8",
                ),
                io.Int.Input(
                    "num_heads",
                    default=0,
                    min=0,
                    max=1024,
                    optional=True,
                    tooltip=f"attention heads; 0 = from the checkpoint (metadata 'config' / diffusers config.json), else by model width ({_KNOWN}). Other widths need it set",
                ),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model_name, weight_dtype="default", num_heads=0) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("diffusion_models", model_name)
        # the fastest kernels this machine has (fast.resolve("auto"...)); SteadyDancerSpeed overrides
        return io.NodeOutput(load_steadydancer(path, weight_dtype, num_heads=num_heads, speed=fast.resolve()))


NODES = [SteadyDancerModelLoader]
