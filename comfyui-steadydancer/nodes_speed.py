"""SteadyDancerSpeed: choose the attention kernel, fp8 matmul and compile of the model's blocks."""
from .steadydancer import fast


class SteadyDancerSpeed:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "attention": (list(fast.ATTENTION_CHOICES), {"default": "auto", "tooltip":
                          "auto: the fastest kernel here (ATTENTION_BACKEND when set); sage = SageAttention2, "
                          "fa3 / fa3_fp8 = FlashAttention-3 bf16 / fp8 (Hopper), sdpa = PyTorch"}),
            "fp8_matmul": (list(fast.FP8_CHOICES), {"default": "auto", "tooltip":
                           "fp8 matmuls for the file's fp8 weights, activations scaled per row or per tensor; "
                           "auto: rowwise on GPUs with fp8 (sm 8.9+)"}),
            "compile": (list(fast.COMPILE_CHOICES), {"default": "auto", "tooltip":
                        "torch.compile of the transformer block (compiled once, used by all 40 blocks)"}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "SteadyDancer"

    def patch(self, model, attention="auto", fp8_matmul="auto", compile="auto"):
        speed = fast.resolve(attention, fp8_matmul, compile)
        return (fast.apply(model.clone(), speed),)


NODE_CLASS_MAPPINGS = {"SteadyDancerSpeed": SteadyDancerSpeed}
NODE_DISPLAY_NAME_MAPPINGS = {"SteadyDancerSpeed": "SteadyDancer Speed (attention / fp8 / compile)"}
