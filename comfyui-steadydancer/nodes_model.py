"""SteadyDancerModelLoader: a SteadyDancer file from diffusion_models → a ComfyUI MODEL."""
import folder_paths

from .steadydancer.convert import KNOWN_HEADS
from .steadydancer import fast
from .steadydancer.loading import WEIGHT_DTYPES, load_steadydancer

_KNOWN = ", ".join(f"{d} → {h}" for d, h in sorted(KNOWN_HEADS.items()))


class SteadyDancerModelLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (folder_paths.get_filename_list("diffusion_models"),
                           {"tooltip": "SteadyDancer checkpoint: official, Kijai fp16/bf16 or fp8_e4m3fn_scaled_KJ"}),
            "weight_dtype": (list(WEIGHT_DTYPES), {"default": "default",
                             "tooltip": "default keeps the file's precision (scaled fp8 stays fp8, its high-precision "
                                        "layers stay as stored); fp8_* stores weights in fp8"}),
        }, "optional": {
            "num_heads": ("INT", {"default": 0, "min": 0, "max": 1024,
                          "tooltip": "attention heads; 0 = from the checkpoint (metadata 'config' / diffusers "
                                     f"config.json), else by model width ({_KNOWN}). Other widths need it set"}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"
    CATEGORY = "SteadyDancer"

    def load(self, model_name, weight_dtype="default", num_heads=0):
        path = folder_paths.get_full_path_or_raise("diffusion_models", model_name)
        # the fastest kernels this machine has (fast.resolve("auto"...)); SteadyDancerSpeed overrides
        return (load_steadydancer(path, weight_dtype, num_heads=num_heads, speed=fast.resolve()),)


NODE_CLASS_MAPPINGS = {"SteadyDancerModelLoader": SteadyDancerModelLoader}
NODE_DISPLAY_NAME_MAPPINGS = {"SteadyDancerModelLoader": "SteadyDancer Model Loader"}
