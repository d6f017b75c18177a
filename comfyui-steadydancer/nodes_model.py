"""SteadyDancerModelLoader: a SteadyDancer file from diffusion_models → a ComfyUI MODEL."""
import folder_paths
from comfy_api.latest import io

from .steadydancer.loading import WEIGHT_DTYPES, load_steadydancer


class SteadyDancerModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="SteadyDancerModelLoader", display_name="SteadyDancer Model Loader",
                         category="SteadyDancer", inputs=[
            io.Combo.Input("model_name", options=folder_paths.get_filename_list("diffusion_models"),
                           tooltip="SteadyDancer checkpoint: official, Kijai fp16/bf16 or fp8_e4m3fn_scaled_KJ"),
            io.Combo.Input("weight_dtype", options=list(WEIGHT_DTYPES), default="default",
                           tooltip="default keeps the file's precision (scaled fp8 stays fp8); fp8_* stores weights in fp8"),
        ], outputs=[io.Model.Output()])

    @classmethod
    def execute(cls, model_name, weight_dtype="default") -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("diffusion_models", model_name)
        return io.NodeOutput(load_steadydancer(path, weight_dtype))


NODES = [SteadyDancerModelLoader]
