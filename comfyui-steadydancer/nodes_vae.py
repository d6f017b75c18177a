"""SteadyDancerVAEDecode: core's VAEDecode, bit for bit, at a VRAM peak that does not grow with the video's length.

Core's ``VAEDecode`` decodes the whole latent on the GPU and concatenates the growing pixel video
there (1997 frames at 480×832: ~4.8 GB of bf16 frames, twice during each ``torch.cat``), and falls
back to spatially tiled decoding (approximate) when that runs out of memory. This node runs the
same decoder loop one latent frame at a time and moves every decoded chunk to ComfyUI's
intermediate device (``vae_fast.decode``); for a VAE other than Wan 2.1 it is core's decode.
"""

from comfy_api.latest import io

from . import vae_fast


class SteadyDancerVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SteadyDancerVAEDecode",
            display_name="SteadyDancer VAE Decode (long videos)",
            category="SteadyDancer",
            description="VAEDecode with the same output, decoding one latent frame at a time straight to the intermediate device: GPU memory independent of the video's length.",
            inputs=[io.Latent.Input("samples", tooltip="The latent to be decoded."), io.Vae.Input("vae")],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, samples, vae) -> io.NodeOutput:
        images = vae_fast.decode(vae, samples["samples"])
        if images.ndim == 5:  # combine batches, as core's VAEDecode
            images = images.reshape(-1, images.shape[-3], images.shape[-2], images.shape[-1])
        return io.NodeOutput(images)


NODES = [SteadyDancerVAEDecode]
