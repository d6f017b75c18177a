"""SteadyDancerSpeed: choose the attention kernel, fp8 matmul and compile of the model's blocks."""

from comfy_api.latest import io

from .steadydancer import fast


class SteadyDancerSpeed(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerSpeed",
            display_name="SteadyDancer Speed (attention / fp8 / compile)",
            category="SteadyDancer",
            inputs=[
                io.Model.Input("model"),
                io.Combo.Input(
                    "attention",
                    options=list(fast.ATTENTION_CHOICES),
                    default="auto",
                    tooltip="auto: the fastest kernel here (ATTENTION_BACKEND when set); sage = SageAttention2, fa3 / fa3_fp8 = FlashAttention-3 bf16 / fp8 (Hopper), sdpa = PyTorch",
                ),
                io.Combo.Input(
                    "fp8_matmul",
                    options=list(fast.FP8_CHOICES),
                    default="auto",
                    tooltip="fp8 matmuls for the file's fp8 weights, activations scaled per row or per tensor; auto: rowwise on GPUs with fp8 (sm 8.9+)",
                ),
                io.Combo.Input("compile", options=list(fast.COMPILE_CHOICES), default="auto", tooltip="torch.compile of the transformer block (compiled once, used by all 40 blocks)"),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, attention="auto", fp8_matmul="auto", compile="auto") -> io.NodeOutput:
        speed = fast.resolve(attention, fp8_matmul, compile)
        return io.NodeOutput(fast.apply(model.clone(), speed))


NODES = [SteadyDancerSpeed]
