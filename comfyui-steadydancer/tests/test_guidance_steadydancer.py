"""The SteadyDancer guider driving the native SteadyDancer model (the ``native`` helper's
model_base + loader) with conditioning built by its SteadyDancerConditioning contract code.

A tiny random SteadyDancer checkpoint (dim 128, 1 layer, text dim 64) is loaded through
``load_state_dict_model``; the conditioning comes from ``build_conditioning`` with a small
deterministic stand-in VAE (average pooling to the Wan latent shape; the real Wan VAE is not the
subject here) and CLIP-vision outputs with random penultimate hidden states. At every step of a
real sampling run the test evaluates the three conditionings separately through ComfyUI's
``calc_cond_batch`` on the same input and checks the guider's result against the official
formula, and that the negative text and the negative poses really change the model's output."""

import pytest
import torch

from pack_loader import pack_module
from sd_helpers import SD_FIXED

CFG, POSE_CFG = 5.0, 1.5


@pytest.fixture(scope="module")
def env(comfyui_source):
    import comfy_env

    comfy_env.setup_comfy(comfyui_source)
    loading = pack_module("steadydancer.loading")
    cond_mod = pack_module("nodes_conditioning")
    # imported here so that a ComfyUI module that does not import fails the fixture, not a test
    import comfy.clip_vision  # noqa: F401
    import comfy.ops  # noqa: F401
    import comfy.samplers  # noqa: F401

    return loading, cond_mod, pack_module("steadydancer.model"), pack_module("guidance")


def tiny_checkpoint(model_mod, seed=0):
    import comfy.ops

    cfg = dict(
        patch_size=(1, 2, 2),
        dim=128,
        in_dim=36,
        ffn_dim=256,
        freq_dim=256,
        text_dim=64,
        out_dim=16,
        num_heads=1,
        num_layers=1,
        text_len=512,
        **SD_FIXED,
    )
    with torch.device("meta"):
        m = model_mod.SteadyDancerWanModel(operations=comfy.ops.disable_weight_init, device="meta", **cfg)
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in m.state_dict().items():
        if k.endswith(".bias") or "norm" in k:
            sd[k] = torch.randn(v.shape, generator=g) * 0.02 + (1.0 if "norm" in k and k.endswith("weight") else 0.0)
        else:
            sd[k] = torch.randn(v.shape, generator=g) * (1.0 / max(1, v[0].numel()) ** 0.5)
    return sd


class PoolVAE:
    """Stand-in VAE: IMAGE [N, H, W, 3] -> latent [1, 16, (N-1)//4+1, H/8, W/8] (deterministic)."""

    def encode(self, img):
        n, h, w, _ = img.shape
        x = img.movedim(-1, 1)  # N, 3, H, W
        x = torch.nn.functional.avg_pool2d(x, 8)  # N, 3, h, w
        x = torch.cat([x, x.flip(1), x * 0.5, x.mean(1, keepdim=True)] * 2, dim=1)[:, :16]  # N, 16, h, w
        idx = torch.arange(0, n, 4)  # one latent frame per 4 (+ first)
        return (x[idx] * 2 - 1).movedim(0, 1).unsqueeze(0)


def clip_out(seed):
    import comfy.clip_vision

    o = comfy.clip_vision.Output()
    o.penultimate_hidden_states = torch.randn(1, 257, 1280, generator=torch.Generator().manual_seed(seed))
    return o


def make_conds(cond_mod, length=5, size=32):
    g = torch.Generator().manual_seed(7)
    text = lambda s: [[torch.randn(1, 6, 64, generator=torch.Generator().manual_seed(s)), {}]]  # noqa: E731
    ref = torch.rand(1, size, size, 3, generator=g)
    pose = torch.rand(length, size, size, 3, generator=g)
    neg_pose = torch.rand(length, size, size, 3, generator=g)
    return cond_mod.build_conditioning(text(1), text(2), PoolVAE(), clip_out(3), clip_out(4), ref, pose, neg_pose, size, size, length)


def sample(env, cfg, pose_cfg, steps=4, check=True):
    loading, cond_mod, model_mod, guidance = env
    import comfy.samplers

    patcher = loading.load_state_dict_model(tiny_checkpoint(model_mod), num_heads=1)
    batches = []
    patcher.set_model_unet_function_wrapper(lambda apply, a: batches.append(a["input"].shape[0]) or apply(a["input"], a["timestep"], **a["c"]))
    pos, neg, neg_pose, latent = make_conds(cond_mod)
    guider = guidance.SteadyDancerCFGGuider(patcher)
    guider.set_conds(pos, neg, neg_pose)
    guider.set_cfg(cfg, pose_cfg, 0.1, 0.4)
    per_step = []

    def sampler_fn(model, x, sigmas, extra_args=None, callback=None, disable=None):
        g = model.inner_model  # our guider, with its processed conds
        s_in = x.new_ones([x.shape[0]])
        for i in range(len(sigmas) - 1):
            n0 = len(batches)
            d = model(x, sigmas[i] * s_in, **extra_args)
            rec = {"i": i, "evals": sum(batches[n0:]), "d": d}
            if check:
                outs = [comfy.samplers.calc_cond_batch(g.inner_model, [g.conds[k]], x, sigmas[i] * s_in, extra_args["model_options"])[0] for k in ("positive", "negative", "negative_pose")]
                rec["outs"] = outs
            per_step.append(rec)
            x = x + (x - d) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
        return x

    sigmas = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])[: steps + 1]
    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(0))
    out = guider.sample(noise, latent["samples"], comfy.samplers.KSAMPLER(sampler_fn), sigmas, seed=0)
    return out, per_step


def test_guider_drives_steadydancer_with_official_formula(env):
    _, guidance = env[0], env[3]
    out, steps = sample(env, CFG, POSE_CFG)
    assert out.shape == (1, 16, 2, 4, 4) and torch.isfinite(out).all()
    for st in steps:
        active = st["i"] == 1  # 1/4 = 0.25 is inside (0.1, 0.4)
        assert st["evals"] == (3 if active else 2), st
        c, u, p = st["outs"]
        assert not torch.allclose(c, u, atol=1e-4), "negative text made no difference to the model"
        assert not torch.allclose(c, p, atol=1e-4), "negative poses made no difference to the model"
        exp = guidance.official_combination(c, u, p, CFG, POSE_CFG, active)
        torch.testing.assert_close(st["d"], exp, rtol=1e-4, atol=1e-4)


def test_fast_preset_one_evaluation_per_step(env):
    out, steps = sample(env, 1.0, 0.0, check=False)
    assert [st["evals"] for st in steps] == [1, 1, 1, 1]
    assert torch.isfinite(out).all()
