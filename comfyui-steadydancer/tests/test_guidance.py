"""The SteadyDancer guider inside ComfyUI's real sampling machinery.

A tiny real Wan model (ComfyUI core's WAN21 BaseModel, 1 layer, dim 32) is wrapped in a real
ModelPatcher; a ``model_function_wrapper`` (core's hook around ``BaseModel.apply_model``) replaces
the network by a toy velocity field v_k(x) = k * x (returned as the flow model's denoised
prediction x - sigma * v, which is what apply_model returns), where k (1, 2, 3) is read from the text
conditioning so that we know which of positive / negative / negative_pose was evaluated. A
recording Euler sampler (``comfy.samplers.KSAMPLER``) calls the guider at every step, so the test
sees the guider's combined prediction and the model evaluations of every step.
"""

import math

import pytest
import torch

from pack_loader import pack_module

K = {"positive": 1.0, "negative": 2.0, "negative_pose": 3.0}


@pytest.fixture(scope="module")
def comfy(comfyui_source):
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True  # before model_management picks a device
    import comfy.model_base
    import comfy.model_management
    import comfy.model_patcher
    import comfy.samplers
    import comfy.supported_models

    return comfy


def tiny_wan(comfy):
    cfg = comfy.supported_models.WAN21_T2V(
        {
            "image_model": "wan2.1",
            "model_type": "t2v",
            "dim": 32,
            "ffn_dim": 64,
            "freq_dim": 256,
            "num_heads": 2,
            "num_layers": 1,
            "in_dim": 16,
            "out_dim": 16,
            "text_len": 8,
            "patch_size": (1, 2, 2),
            "window_size": (-1, -1),
            "qk_norm": True,
            "cross_attn_norm": True,
            "eps": 1e-6,
        }
    )
    cfg.set_inference_dtype(torch.float32, None)
    model = comfy.model_base.WAN21(cfg, model_type=comfy.model_base.ModelType.FLOW, image_to_video=False, device=torch.device("cpu"))
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def text_cond(k: float):
    return [[torch.full((1, 8, 4096), k), {}]]


class Recorder:
    def __init__(self):
        self.calls = []  # per model call: list of k values evaluated together

    def wrapper(self, apply_model, args):
        x, c = args["input"], args["c"]
        ks = c["c_crossattn"].mean(dim=(1, 2))  # one k per batch entry
        self.calls.append([float(k) for k in ks])
        sigma = args["timestep"].view(-1, *([1] * (x.ndim - 1)))
        v = x * ks.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        return x - sigma * v  # apply_model returns the denoised prediction of a flow model


def run(comfy, guidance, cfg, pose_cfg, start, end, steps, patcher=None, negative_pose=K["negative_pose"]):
    """``negative_pose``: its k, or None for no negative_pose conditioning."""
    patcher = patcher or tiny_wan(comfy)
    rec = Recorder()
    patcher = patcher.clone()
    patcher.set_model_unet_function_wrapper(rec.wrapper)
    guider = guidance.SteadyDancerCFGGuider(patcher)
    guider.set_conds(text_cond(K["positive"]), text_cond(K["negative"]), None if negative_pose is None else text_cond(negative_pose))
    guider.set_cfg(cfg, pose_cfg, start, end)
    steps_seen = []

    def sampler_fn(model, x, sigmas, extra_args=None, callback=None, disable=None):
        s_in = x.new_ones([x.shape[0]])
        for i in range(len(sigmas) - 1):
            before = len(rec.calls)
            denoised = model(x, sigmas[i] * s_in, **extra_args)
            steps_seen.append({"x": x.clone(), "sigma": float(sigmas[i]), "denoised": denoised.clone(), "calls": rec.calls[before:]})
            x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
        return x

    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    noise = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    latent = torch.zeros_like(noise)
    guider.sample(noise, latent, comfy.samplers.KSAMPLER(sampler_fn), sigmas, seed=0)
    return steps_seen


def expected_denoised(x, sigma, cfg, pose_cfg, active):
    """Official formula on velocities, v = v_u + cfg (v_c - v_u) [+ pose_cfg (v_c - v_p)], turned
    into the denoised prediction x - sigma * v that ComfyUI guiders return (flow model)."""
    v = {name: k * x for name, k in K.items()}
    comb = v["negative"] + cfg * (v["positive"] - v["negative"])
    if active:
        comb = comb + pose_cfg * (v["positive"] - v["negative_pose"])
    return x - sigma * comb


def test_three_way_guidance_matches_official_formula(comfy):
    """10 steps, window (0.1, 0.4): the pose term is active at steps 2 and 3 only (1/10 = 0.1 and
    4/10 = 0.4 are excluded by the official strict inequalities)."""
    guidance = pack_module("guidance")
    steps = run(comfy, guidance, cfg=5.0, pose_cfg=1.5, start=0.1, end=0.4, steps=10)
    assert len(steps) == 10
    for i, st in enumerate(steps):
        active = i in (2, 3)
        evaluated = sorted(k for call in st["calls"] for k in call)
        assert evaluated == ([1.0, 2.0, 3.0] if active else [1.0, 2.0]), f"step {i}: {evaluated}"
        exp = expected_denoised(st["x"], st["sigma"], 5.0, 1.5, active)
        torch.testing.assert_close(st["denoised"], exp, rtol=1e-5, atol=1e-5, msg=f"step {i}")
        # the pose term really changes the result inside the window
        if active:
            assert not torch.allclose(st["denoised"], expected_denoised(st["x"], st["sigma"], 5.0, 1.5, False))


def test_cfg1_fast_preset_one_model_evaluation_per_step(comfy):
    guidance = pack_module("guidance")
    steps = run(comfy, guidance, cfg=1.0, pose_cfg=0.0, start=0.1, end=0.4, steps=4)
    assert len(steps) == 4
    for i, st in enumerate(steps):
        assert st["calls"] == [[1.0]], f"step {i}: {st['calls']}"
        torch.testing.assert_close(st["denoised"], st["x"] - st["sigma"] * st["x"] * K["positive"])


def test_cfg1_keeps_pose_term_when_pose_cfg_set(comfy):
    """cfg 1 drops only the text negative: inside the window (4 steps: step 1, 1/4 = 0.25) the
    negative-pose evaluation still runs and the result is v_c + pose_cfg (v_c - v_p)."""
    guidance = pack_module("guidance")
    steps = run(comfy, guidance, cfg=1.0, pose_cfg=1.5, start=0.1, end=0.4, steps=4)
    for i, st in enumerate(steps):
        evaluated = sorted(k for call in st["calls"] for k in call)
        assert evaluated == ([1.0, 3.0] if i == 1 else [1.0])
        torch.testing.assert_close(st["denoised"], expected_denoised(st["x"], st["sigma"], 1.0, 1.5, i == 1), rtol=1e-5, atol=1e-5)


def test_step_of_sigma_and_window(comfy):
    guidance = pack_module("guidance")
    sig = torch.tensor([1.0, 0.8, 0.5, 0.2, 0.0])
    assert guidance.step_of_sigma(1.0, sig) == (0, 4)
    assert guidance.step_of_sigma(0.8, sig) == (1, 4)
    assert guidance.step_of_sigma(0.65, sig) == (1, 4)  # an intermediate evaluation of step 1
    assert guidance.step_of_sigma(0.2, sig) == (3, 4)
    assert guidance.step_of_sigma(0.05, sig) == (3, 4)
    assert [guidance.pose_window_active(i, 10, 0.1, 0.4) for i in range(10)] == [False, False, True, True, False, False, False, False, False, False]
    with pytest.raises(ValueError, match="no steps"):
        guidance.step_of_sigma(0.5, torch.tensor([1.0]))


def test_bad_guider_settings(comfy):
    guidance = pack_module("guidance")
    g = guidance.SteadyDancerCFGGuider(tiny_wan(comfy))
    with pytest.raises(ValueError, match="after pose_end"):
        g.set_cfg(5.0, 1.5, 0.5, 0.2)
    with pytest.raises(ValueError, match="fractions"):
        g.set_cfg(5.0, 1.5, 0.1, 1.5)
    with pytest.raises(ValueError, match="finite"):
        g.set_cfg(math.nan, 1.5, 0.1, 0.4)


def test_node_schema_and_shift_rule(comfy):
    nodes = pack_module("nodes_guidance")
    schema = nodes.SteadyDancerGuider.define_schema()
    names = [i.id for i in schema.inputs]
    assert names == ["model", "positive", "negative", "negative_pose", "cfg", "pose_cfg", "pose_start", "pose_end"]
    defaults = {i.id: i.default for i in schema.inputs if hasattr(i, "default")}
    assert (defaults["cfg"], defaults["pose_cfg"], defaults["pose_start"], defaults["pose_end"]) == (5.0, 1.5, 0.1, 0.4)
    assert nodes.default_shift(832, 480) == 3.0 and nodes.default_shift(480, 832) == 3.0
    assert nodes.default_shift(1024, 576) == 5.0 and nodes.default_shift(512, 512) == 5.0
    out = nodes.SteadyDancerGuider.execute(tiny_wan(comfy), text_cond(1), text_cond(2), text_cond(3), 5.0, 1.5, 0.1, 0.4)
    g = out.result[0] if hasattr(out, "result") else out[0]
    assert isinstance(g, pack_module("guidance").SteadyDancerCFGGuider) and g.pose_cfg == 1.5


# --- negative_pose is lazy: asked for only when pose guidance can run --------------------------


def test_check_lazy_status_asks_for_negative_pose_only_when_pose_guidance_can_run(comfy):
    """ComfyUI passes an unevaluated linked lazy input as None and leaves an unconnected optional
    input out; the guider asks for negative_pose when pose_cfg != 0 and the window is not empty."""
    g = pack_module("nodes_guidance").SteadyDancerGuider
    ask = lambda **kw: g.check_lazy_status(model=None, positive=[], negative=[], cfg=5.0, **kw)  # noqa: E731
    assert ask(pose_cfg=1.5, pose_start=0.1, pose_end=0.4, negative_pose=None) == ["negative_pose"]
    assert ask(pose_cfg=0.0, pose_start=0.1, pose_end=0.4, negative_pose=None) == []  # fast preset
    assert ask(pose_cfg=1.5, pose_start=0.4, pose_end=0.4, negative_pose=None) == []  # empty window
    assert ask(pose_cfg=1.5, pose_start=0.1, pose_end=0.4, negative_pose=text_cond(3)) == []  # evaluated
    assert ask(pose_cfg=1.5, pose_start=0.1, pose_end=0.4) == []  # unconnected: execute says what to do
    guidance = pack_module("guidance")
    assert guidance.pose_guidance_possible(1.5, 0.1, 0.4) and not guidance.pose_guidance_possible(0.0, 0.1, 0.4)
    assert not guidance.pose_guidance_possible(1.5, 0.3, 0.3)


def test_pose_cfg_without_negative_pose_is_a_clear_error(comfy):
    g = pack_module("nodes_guidance").SteadyDancerGuider
    for missing in ({}, {"negative_pose": None}):
        with pytest.raises(ValueError, match="pose_cfg is 1.5 .*no negative_pose: connect SteadyDancer Negative Pose Conditioning"):
            g.execute(model=tiny_wan(comfy), positive=text_cond(1), negative=text_cond(2), cfg=5.0, pose_cfg=1.5, pose_start=0.1, pose_end=0.4, **missing)
    # pose CFG off (or an empty window): no negative_pose needed
    for pose_cfg, start, end in ((0.0, 0.1, 0.4), (1.5, 0.4, 0.4)):
        (guider,) = g.execute(model=tiny_wan(comfy), positive=text_cond(1), negative=text_cond(2), cfg=5.0, pose_cfg=pose_cfg, pose_start=start, pose_end=end).result
        assert "negative_pose" not in guider.original_conds


def test_without_negative_pose_the_fast_preset_samples_the_same(comfy):
    """pose_cfg 0 and no negative_pose: the same model calls and the same result as with one."""
    guidance = pack_module("guidance")
    patcher = tiny_wan(comfy)
    with_neg = run(comfy, guidance, cfg=1.0, pose_cfg=0.0, start=0.1, end=0.4, steps=4, patcher=patcher)
    without = run(comfy, guidance, cfg=1.0, pose_cfg=0.0, start=0.1, end=0.4, steps=4, patcher=patcher, negative_pose=None)
    for a, b in zip(with_neg, without):
        assert a["calls"] == b["calls"] == [[1.0]]
        assert torch.equal(a["denoised"], b["denoised"])


def test_sampling_with_pose_guidance_and_no_negative_pose_raises(comfy):
    guidance = pack_module("guidance")
    with pytest.raises(ValueError, match="pose guidance is on at this step .*no negative_pose"):
        run(comfy, guidance, cfg=1.0, pose_cfg=1.5, start=0.1, end=0.4, steps=4, negative_pose=None)
