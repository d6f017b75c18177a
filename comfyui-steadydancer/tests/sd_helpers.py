"""Helpers shared by the SteadyDancer model tests: tiny config, recipe weights, layouts, forward."""

import json
from pathlib import Path

import numpy as np
import torch

import golden_recipe as R

GOLDEN = Path(__file__).resolve().parent / "golden" / "parity.npz"

# The SteadyDancer-specific constructor arguments every tiny test model shares (pose and alignment
# modules at their official sizes, the official norms).
SD_FIXED = dict(
    in_dim_c=16,
    noise_dim=16,
    align_hidden=128,
    align_heads=8,
    dy_dim=4,
    dy_squeeze=4,
    dy_mul=1,
    cross_attn_norm=True,
    qk_norm=True,
    eps=1e-6,
)

TINY = dict(
    patch_size=(1, 2, 2),
    dim=R.CONFIG["dim"],
    in_dim=R.CONFIG["in_dim"],
    ffn_dim=R.CONFIG["ffn_dim"],
    freq_dim=R.CONFIG["freq_dim"],
    text_dim=R.CONFIG["text_dim"],
    out_dim=R.CONFIG["out_dim"],
    num_heads=R.CONFIG["num_heads"],
    num_layers=R.CONFIG["num_layers"],
    text_len=R.CONFIG["text_len"],
    **SD_FIXED,
)


def load_golden():
    z = np.load(GOLDEN)
    meta = json.loads(str(z["meta"]))
    return {k: z[k] for k in z.files if k != "meta"}, meta


def recipe_weights():
    from comfyui_steadydancer.steadydancer.convert import expected_keys

    shapes, _ = expected_keys(TINY)
    return R.random_weights(shapes)


def forward(patcher, case, inputs=None):
    """Run the loaded model's diffusion model on the golden inputs of ``case`` (batch of 1)."""
    golden, _ = load_golden()
    shared = R.shared_inputs()
    get = (lambda k: torch.from_numpy(golden[f"{case}/in/{k}"])) if inputs is None else (lambda k: inputs[k])
    dm = patcher.model.diffusion_model
    x = torch.cat([get("noise"), get("y")])[None]
    with torch.no_grad():
        out = dm(
            x,
            get("t"),
            shared["context"][None],
            clip_fea=shared["clip_x"],
            sd_pose=get("condition")[None],
            sd_ref=get("ref_lat")[None],
            sd_pose_ref=get("pose_ref_lat")[None],
            sd_clip_pose=shared["clip_c"],
        )
    return out[0].float().numpy()


def random_wan_vae():
    """ComfyUI core's Wan 2.1 VAE architecture at full width with seeded random weights (ComfyUI's
    ops leave parameters uninitialised, so every tensor gets a value): the real encoder/decoder code."""
    import comfy.ldm.wan.vae
    import comfy.sd

    torch.manual_seed(0)
    m = comfy.ldm.wan.vae.WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)
    sd = {k: torch.randn(v.shape) * 0.02 if v.ndim >= 2 and v.shape[1] > 1 else (torch.ones(v.shape) if k.endswith(("gamma", "weight")) else torch.zeros(v.shape)) for k, v in m.state_dict().items()}
    return comfy.sd.VAE(sd=sd)
