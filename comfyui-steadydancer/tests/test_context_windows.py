"""Long videos: SteadyDancer under ComfyUI core's context windows (``context_windows.py``).

The tiny random SteadyDancer checkpoint (the official architecture at dim 128, 1 layer) and the
conditioning built by ``build_conditioning`` come from test_guidance_steadydancer. Sampling goes
through the real guider and core's real samplers (``comfy.samplers.sampler_object``), so what a
window receives is what the model receives: a unet function wrapper records the model inputs of
every call together with core's ``transformer_options["context_window"]``.
"""

import pytest
import torch

from pack_loader import pack_module
from test_guidance_steadydancer import make_conds, tiny_checkpoint

FRAMES = 33  # 9 latent frames
WINDOW, OVERLAP = 13, 4  # 4 latent frames, 1 shared: windows [0-3] [3-6] [5-8] (static schedule)


@pytest.fixture(scope="module")
def env(comfyui_source):
    import comfy_env

    comfy_env.setup_comfy(comfyui_source)
    loading = pack_module("steadydancer.loading")
    cond_mod = pack_module("nodes_conditioning")
    model_mod = pack_module("steadydancer.model")
    guidance = pack_module("guidance")
    cw = pack_module("context_windows")
    patcher = loading.load_state_dict_model(tiny_checkpoint(model_mod), num_heads=1)
    conds = make_conds(cond_mod, length=FRAMES)
    return dict(patcher=patcher, conds=conds, guidance=guidance, cw=cw, nodes=pack_module("nodes_context"))


def sample(env, model, sampler="euler", cfg=5.0, pose_cfg=1.5, steps=4, record=None, conds=None):
    import comfy.samplers

    pos, neg, neg_pose, latent = conds or env["conds"]
    model = model.clone()
    if record is not None:

        def wrap(apply, a):
            win = a["c"]["transformer_options"].get("context_window")
            record.append(
                {
                    "window": None if win is None else list(win.index_list),
                    "cond_or_uncond": list(a["cond_or_uncond"]),
                    "x": a["input"].clone(),
                    "c": {k: v for k, v in a["c"].items() if k != "transformer_options"},
                }
            )
            return apply(a["input"], a["timestep"], **a["c"])

        model.set_model_unet_function_wrapper(wrap)
    guider = env["guidance"].SteadyDancerCFGGuider(model)
    guider.set_conds(pos, neg, neg_pose)
    guider.set_cfg(cfg, pose_cfg, 0.1, 0.4)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps)
    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(0))
    return guider.sample(noise, latent["samples"], comfy.samplers.sampler_object(sampler), sigmas, seed=0)


def windowed(env, window=WINDOW, overlap=OVERLAP, fuse="pyramid", schedule="standard_static"):
    return env["cw"].apply_context_windows(env["patcher"], window, overlap, fuse, schedule)


# --- one window: exactly the plain path ------------------------------------------------------


def test_window_longer_than_video_is_the_single_window_path_exactly(env):
    plain = sample(env, env["patcher"])
    for window in (FRAMES, 81):  # the latent fits: the handler is consulted and declines
        out = sample(env, windowed(env, window, 16))
        assert torch.equal(out, plain), window


def test_handler_with_one_window_over_every_frame_equals_plain_calc(env):
    """Through the handler's own window path (slicing, fusing): one window over all frames equals
    core's plain batch evaluation, bit for bit with flat and overlap-linear fuse, to rounding with
    pyramid (its weights are divided out again)."""
    import comfy.samplers

    cw = env["cw"]
    pos, neg, neg_pose, latent = env["conds"]
    res = {}

    def sampler_fn(model, x, sigmas, extra_args=None, callback=None, disable=None):
        g = model.inner_model  # the guider, holding the processed conditioning
        conds = [g.conds["positive"], g.conds["negative"], g.conds["negative_pose"]]
        mo = extra_args["model_options"]
        s = sigmas[1] * x.new_ones([x.shape[0]])
        res["plain"] = comfy.samplers._calc_cond_batch_outer(g.inner_model, conds, x, s, mo)
        for fuse in ("flat", "overlap-linear", "pyramid"):
            h = cw.SteadyDancerContextHandler(x.shape[2], 0, fuse_method=fuse, context_schedule="batched")
            h.should_use_context = lambda *a: True  # take the window path with one window
            res[fuse] = h.execute(comfy.samplers._calc_cond_batch_outer, g.inner_model, conds, x, s, mo)
            assert mo["transformer_options"]["context_window"].index_list == list(range(x.shape[2]))
        return x

    guider = env["guidance"].SteadyDancerCFGGuider(env["patcher"])
    guider.set_conds(pos, neg, neg_pose)
    guider.set_cfg(5.0, 1.5, 0.1, 0.4)
    import comfy.samplers as S

    sigmas = S.calculate_sigmas(env["patcher"].get_model_object("model_sampling"), "simple", 4)
    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(0))
    guider.sample(noise, latent["samples"], S.KSAMPLER(sampler_fn), sigmas, seed=0)
    assert len(res["plain"]) == 3
    for fuse in ("flat", "overlap-linear"):
        for got, want in zip(res[fuse], res["plain"]):
            assert torch.equal(got, want), fuse
    for fuse in ("pyramid",):
        for got, want in zip(res[fuse], res["plain"]):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# --- coverage and weights ---------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["standard_static", "standard_uniform", "looped_uniform"])
@pytest.mark.parametrize("fuse", ["pyramid", "flat", "overlap-linear"])
@pytest.mark.parametrize("frames", [85, 161, 321, 481, 1997])
def test_windows_cover_every_frame_and_weights_sum_to_one(env, frames, fuse, schedule):
    """Core's fuse over our windows, run through the handler's execute with a stand-in model that
    returns, per frame, a constant c and the frame's index: the fused result is c and the index
    again at every frame (per-frame weights are a convex combination) and every frame is covered."""
    cw = env["cw"]
    t = cw.latent_frames(frames)
    length, overlap = cw.window_latents(81, 16)
    h = cw.SteadyDancerContextHandler(length, overlap, fuse_method=fuse, context_schedule=schedule)
    x = torch.zeros(1, 1, t, 1, 1)
    sigmas = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])
    for step in range(4):
        seen = torch.zeros(t)

        def fake_calc(model, conds, sub_x, ts, mo, seen=seen):
            idx = mo["transformer_options"]["context_window"].index_list
            assert len(idx) == min(length, t) and sub_x.shape[2] == len(idx)
            seen[idx] += 1
            frame = torch.tensor(idx, dtype=torch.float32).view(1, 1, -1, 1, 1)
            return [torch.full_like(sub_x, 2.5), frame.expand_as(sub_x).clone()]

        out = h.execute(fake_calc, None, [None, None], x, sigmas[step : step + 1], {"transformer_options": {"sample_sigmas": sigmas}})
        assert (seen > 0).all(), f"frames never in a window: {torch.nonzero(seen == 0).flatten().tolist()}"
        torch.testing.assert_close(out[0], torch.full_like(x, 2.5), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[1].flatten(), torch.arange(t, dtype=torch.float32), rtol=1e-5, atol=1e-3)


def test_window_layout_in_frames(env):
    cw = env["cw"]
    assert cw.window_latents(81, 16) == (21, 4)
    assert cw.frame_windows(81, 81, 16) == [list(range(21))]
    wins = cw.frame_windows(161, 81, 16)  # 41 latent frames: starts 0, 17, then shifted to 20
    assert [(w[0], w[-1]) for w in wins] == [(0, 20), (17, 37), (20, 40)]
    assert len(cw.frame_windows(481, 81, 16)) == 7
    for bad in ((80, 16), (81, 6), (81, 84), (1, 0)):
        with pytest.raises(ValueError):
            cw.window_latents(*bad)


# --- what each window receives ------------------------------------------------------------------


def test_each_window_gets_its_slice_and_the_whole_of_the_rest(env):
    full, win = [], []
    sample(env, env["patcher"], steps=4, record=full)
    sample(env, windowed(env), steps=4, record=win)
    ref = {}  # full-length conditions per conditioning list
    for call in full:
        for j, which in enumerate(call["cond_or_uncond"]):
            ref[which] = {k: v[j : j + 1] for k, v in call["c"].items() if isinstance(v, torch.Tensor)}
    assert set(ref) == {0, 1, 2}, "positive, negative text and negative poses all evaluated"
    assert not torch.equal(ref[0]["sd_pose"], ref[2]["sd_pose"]), "negative poses differ"
    windows = sorted({tuple(c["window"]) for c in win})
    assert windows == [(0, 1, 2, 3), (3, 4, 5, 6), (5, 6, 7, 8)]
    lists_seen = set()
    for call in win:
        idx = call["window"]
        assert call["x"].shape[2] == len(idx)
        for j, which in enumerate(call["cond_or_uncond"]):
            lists_seen.add(which)
            c = {k: v[j : j + 1] for k, v in call["c"].items() if isinstance(v, torch.Tensor)}
            r = ref[which]
            for k in ("c_concat", "sd_pose"):  # time-aligned: the window's slice
                assert torch.equal(c[k], r[k][:, :, idx]), (k, idx)
            for k in ("sd_ref", "sd_pose_ref", "clip_fea", "sd_clip_pose", "c_crossattn"):  # whole
                assert c[k].shape == r[k].shape and torch.equal(c[k], r[k]), (k, idx)
            mask = c["c_concat"][:, :4]  # the model's mask channels: 1 = known frame (official msk)
            if idx[0] == 0:  # the first-frame image condition: frame 0 known, the rest generated
                assert (mask[:, :, 0] == 1).all() and (mask[:, :, 1:] == 0).all()
                assert torch.equal(c["c_concat"][:, 4:, 0], r["c_concat"][:, 4:, 0])
            else:  # later windows: nothing pinned
                assert (mask == 0).all()
    assert lists_seen == {0, 1, 2}


def test_not_time_aligned_conditions_are_never_sliced_even_when_their_length_matches(env):
    """Conditions that are the same for every frame stay whole even when one of their dims happens
    to equal the latent's frame count (a size-based rule would slice them)."""
    import comfy.conds

    cw = env["cw"]
    t = 9
    x = torch.zeros(1, 16, t, 2, 2)
    h = cw.SteadyDancerContextHandler(4, 1)
    window = h.get_context_windows(None, x, {})[1]
    mc = {k: comfy.conds.CONDRegular(torch.randn(1, 3, t, 2, 2)) for k in cw.WHOLE if k not in ("sd_pose_strength", "sd_pose_t_range")}
    mc["sd_pose_strength"] = comfy.conds.CONDConstant((1.0, 1.0))
    mc["c_concat"] = comfy.conds.CONDNoiseShape(torch.randn(1, 20, t, 2, 2))
    mc["sd_pose"] = comfy.conds.CONDRegular(torch.randn(1, 16, t, 2, 2))
    out = h.get_resized_cond([{"model_conds": mc, "uuid": 1}], x, window)[0]["model_conds"]
    for k in mc:
        if k in cw.TIME_ALIGNED:
            assert torch.equal(out[k].cond, mc[k].cond[:, :, window.index_list]), k
        elif isinstance(mc[k].cond, torch.Tensor):
            assert out[k].cond.shape == mc[k].cond.shape and torch.equal(out[k].cond, mc[k].cond), k
    bad = dict(mc, sd_pose=comfy.conds.CONDRegular(torch.randn(1, 16, t + 2, 2, 2)))
    with pytest.raises(ValueError, match="sd_pose"):
        h.get_resized_cond([{"model_conds": bad}], x, window)
    with pytest.raises(ValueError, match="area"):
        h.get_resized_cond([{"model_conds": mc, "area": (1, 1)}], x, window)


# --- the guider and every core sampler ----------------------------------------------------------


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2s_ancestral", "dpmpp_2m", "uni_pc_bh2", "lcm"])
def test_every_core_sampler_runs_windowed_with_full_guidance(env, sampler):
    rec = []
    out = sample(env, windowed(env), sampler=sampler, steps=3, record=rec)
    assert out.shape == env["conds"][3]["samples"].shape and torch.isfinite(out).all()
    assert {tuple(c["window"]) for c in rec} == {(0, 1, 2, 3), (3, 4, 5, 6), (5, 6, 7, 8)}
    assert {w for c in rec for w in c["cond_or_uncond"]} == {0, 1, 2}  # text cfg + pose cfg per window


def test_fast_preset_windowed_one_call_per_window_and_step(env):
    rec = []
    sample(env, windowed(env), cfg=1.0, pose_cfg=0.0, steps=4, record=rec)
    assert len(rec) == 4 * 3 and all(c["cond_or_uncond"] == [0] for c in rec)


def test_fast_preset_windowed_without_a_negative_pose_list(env):
    """pose CFG off, no negative_pose at all (the guider's lazy input was never evaluated): the
    windows slice only the lists there are, and the result is exactly the one with the list."""
    pos, neg, neg_pose, latent = env["conds"]
    rec = []
    with_list = sample(env, windowed(env), cfg=1.0, pose_cfg=0.0)
    without = sample(env, windowed(env), cfg=1.0, pose_cfg=0.0, conds=(pos, neg, None, latent), record=rec)
    assert torch.equal(with_list, without)
    assert len(rec) == 4 * 3 and all(c["cond_or_uncond"] == [0] for c in rec)


def test_windows_differ_from_plain_but_stay_close_in_the_middle(env):
    """Windowing really happens (the result is not the plain one) and it is a blend of windows."""
    plain = sample(env, env["patcher"])
    out = sample(env, windowed(env))
    assert not torch.allclose(out, plain)
    assert torch.isfinite(out).all()


def test_node_sets_handler_and_rejects_bad_windows(env):
    node = env["nodes"].SteadyDancerContextWindows
    m = node.execute(env["patcher"], 81, 16, "pyramid", "standard_static").args[0]
    h = m.model_options["context_handler"]
    assert (h.context_length, h.context_overlap, h.dim, h.fuse_method.name) == (21, 4, 2, "pyramid")
    assert "context_handler" not in env["patcher"].model_options
    for args in ((80, 16), (81, 6), (81, 81)):
        with pytest.raises(ValueError):
            node.execute(env["patcher"], *args, "pyramid", "standard_static")
    for fuse in ("nope", "relative"):
        with pytest.raises(ValueError, match="fuse"):
            node.execute(env["patcher"], 81, 16, fuse, "standard_static")


def test_pack_registers_the_node(comfy):
    """The pack's __init__ collects nodes_context like every nodes_*.py module (its v3 extension's
    node list; test_pack_packaging checks that ComfyUI's own loader registers that list)."""
    import asyncio

    listed = asyncio.run(asyncio.run(comfy.comfy_entrypoint()).get_node_list())
    by_id = {n.GET_SCHEMA().node_id: n for n in listed}
    assert by_id["SteadyDancerContextWindows"].__name__ == "SteadyDancerContextWindows"
