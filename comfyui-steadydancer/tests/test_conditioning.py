"""SteadyDancerConditioning → conditioning keys (the contract) → extra_conds → model kwargs → sampling.

Uses a real ComfyUI Wan 2.1 VAE with random weights (its architecture is fixed: ~127 M
parameters, encodes 32×32 frames on CPU in seconds) and ComfyUI's CLIP_VISION_OUTPUT class
filled with feature tensors (the 632 M-parameter ViT-H is too large for a CPU test).
"""

import pytest
import torch

from sd_helpers import random_wan_vae, recipe_weights

W, H, LENGTH = 32, 32, 5  # → latent T=2, 4×4


@pytest.fixture(scope="module")
def vae(comfy):
    return random_wan_vae()


def clip_output(seed):
    import comfy.clip_vision

    g = torch.Generator().manual_seed(seed)
    out = comfy.clip_vision.Output()
    out.penultimate_hidden_states = torch.randn(1, 257, 1280, generator=g)
    return out


def frames(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 40, 24, 3, generator=g)  # another size: the node resizes (no crop)


@pytest.fixture(scope="module")
def built(comfy, vae):
    from comfyui_steadydancer.nodes_conditioning import SteadyDancerConditioning

    return SteadyDancerConditioning.execute(**_conditioning_args(vae, negative_pose_frames=frames(LENGTH, 7))).result


def test_contract_keys_and_shapes(built):
    pos, neg, neg_pose, latent = built
    T, h, w = (LENGTH - 1) // 4 + 1, H // 8, W // 8
    assert latent["samples"].shape == (1, 16, T, h, w) and not latent["samples"].any()
    for cond in (pos, neg, neg_pose):
        d = cond[0][1]
        assert d["concat_latent_image"].shape == (1, 16, T, h, w)
        assert d["concat_mask"].shape == (1, 1, T, h, w)
        assert d["concat_mask"][:, :, 0].eq(0).all() and d["concat_mask"][:, :, 1:].eq(1).all()
        assert d["steadydancer_pose_latent"].shape == (1, 16, T, h, w)
        assert d["steadydancer_ref_latent"].shape == (1, 16, 1, h, w)
        assert d["steadydancer_pose_ref_latent"].shape == (1, 16, 1, h, w)
        assert d["clip_vision_output"].penultimate_hidden_states.shape == (1, 257, 1280)
        assert d["steadydancer_clip_pose"].penultimate_hidden_states.shape == (1, 257, 1280)
        assert d["steadydancer_pose_strength"] == (1.0, 1.0)
        assert d["steadydancer_pose_percent"] == (0.0, 1.0)


def test_three_way_split(built):
    pos, neg, neg_pose, _ = built
    # text: negative has the negative text, negative_pose the positive text
    assert torch.equal(neg_pose[0][0], pos[0][0]) and not torch.equal(neg[0][0], pos[0][0])
    # pose: negative shares the positive pose, negative_pose has the negative pose latents
    p, n, npz = (c[0][1]["steadydancer_pose_latent"] for c in (pos, neg, neg_pose))
    assert torch.equal(p, n) and not torch.equal(p, npz)
    # the pose reference is the first positive pose frame, in every list
    assert torch.equal(pos[0][1]["steadydancer_pose_ref_latent"], neg_pose[0][1]["steadydancer_pose_ref_latent"])


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(length=6), "4n\\+1"),
        (dict(width=30), "multiples of 16"),
        (dict(pose_frames=frames(3, 0)), "pose_frames has 3 frames but length=5"),
        (dict(negative_pose_frames=frames(2, 0)), "negative_pose_frames has 2 frames"),
        (dict(pose_start_percent=0.8, pose_end_percent=0.2), "pose_start_percent <= pose_end_percent"),
    ],
)
def test_bad_inputs(comfy, vae, kw, msg):
    from comfyui_steadydancer.nodes_conditioning import build_conditioning

    args = dict(
        positive=[[torch.zeros(1, 7, 64), {}]],
        negative=[[torch.zeros(1, 7, 64), {}]],
        vae=vae,
        clip_vision_ref=clip_output(0),
        clip_vision_pose=clip_output(0),
        reference_image=frames(1, 0),
        pose_frames=frames(LENGTH, 0),
        negative_pose_frames=frames(LENGTH, 0),
        width=W,
        height=H,
        length=LENGTH,
    )
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        build_conditioning(**args)


@pytest.fixture(scope="module")
def model(comfy):
    from comfyui_steadydancer.steadydancer.loading import load_state_dict_model

    return load_state_dict_model(recipe_weights(), num_heads=2)


def test_extra_conds_give_model_kwargs(model, built):
    pos = built[0][0][1]
    noise = torch.randn(1, 16, 2, 4, 4)
    out = model.model.extra_conds(noise=noise, device=torch.device("cpu"), cross_attn=built[0][0][0], **pos)
    assert out["c_concat"].cond.shape == (1, 20, 2, 4, 4)
    assert out["clip_fea"].cond.shape == (1, 257, 1280)
    assert out["sd_clip_pose"].cond.shape == (1, 257, 1280)
    lf = model.model.latent_format
    assert torch.allclose(out["sd_pose"].cond, lf.process_in(pos["steadydancer_pose_latent"]))
    assert torch.allclose(out["sd_ref"].cond, lf.process_in(pos["steadydancer_ref_latent"]))
    assert out["sd_pose_strength"].cond == (1.0, 1.0)
    assert "sd_pose_t_range" not in out  # the full window is the official behaviour: no gating


def test_pose_window_becomes_timestep_range(model, built):
    pos = dict(built[0][0][1], steadydancer_pose_percent=(0.1, 0.4))
    out = model.model.extra_conds(noise=torch.randn(1, 16, 2, 4, 4), device=torch.device("cpu"), **pos)
    hi, lo = out["sd_pose_t_range"].cond
    ms = model.model.model_sampling
    assert hi == pytest.approx(float(ms.timestep(torch.tensor(ms.percent_to_sigma(0.1)))))
    assert lo == pytest.approx(float(ms.timestep(torch.tensor(ms.percent_to_sigma(0.4)))))
    assert hi > lo


def test_sampling_runs_through_comfy(model, built):
    """ComfyUI's sampler, our conds and model: two Euler steps, finite, pose makes a difference."""
    import comfy.sample

    pos, neg, neg_pose, latent = built
    noise = comfy.sample.prepare_noise(latent["samples"], 7)
    kw = dict(steps=2, cfg=1.0, sampler_name="euler", scheduler="simple", latent_image=latent["samples"], seed=7, disable_pbar=True)
    a = comfy.sample.sample(model, noise, positive=pos, negative=neg, **kw)
    b = comfy.sample.sample(model, noise, positive=neg_pose, negative=neg, **kw)
    assert a.shape == latent["samples"].shape and torch.isfinite(a).all()
    assert (a - b).abs().max() > 1e-4  # negative pose latents change the result


# --- negative_pose in its own node (the guider asks for it only when pose CFG is on) ------------


class CountingVAE:
    def __init__(self, vae):
        self.vae, self.frames = vae, []

    def encode(self, img):
        self.frames.append(int(img.shape[0]))
        return self.vae.encode(img)


def _conditioning_args(vae, **kw):
    text = lambda s: [[torch.randn(1, 7, 64, generator=torch.Generator().manual_seed(s)), {}]]  # noqa: E731
    args = dict(
        positive=text(1),
        negative=text(2),
        vae=vae,
        clip_vision_ref=clip_output(3),
        clip_vision_pose=clip_output(4),
        reference_image=frames(1, 5),
        pose_frames=frames(LENGTH + 2, 6),
        width=W,
        height=H,
        length=LENGTH,
        pose_strength_spatial=1.0,
        pose_strength_temporal=1.0,
        pose_start_percent=0.0,
        pose_end_percent=1.0,
    )
    args.update(kw)
    return args


def _same_conditioning(a, b):
    assert len(a) == len(b)
    for (ta, da), (tb, db) in zip(a, b):
        assert torch.equal(ta, tb) and list(da) == list(db)
        for k in da:
            va, vb = da[k], db[k]
            if isinstance(va, torch.Tensor):
                assert va.dtype == vb.dtype and va.shape == vb.shape and torch.equal(va, vb), k
            elif hasattr(va, "penultimate_hidden_states"):
                assert torch.equal(va.penultimate_hidden_states, vb.penultimate_hidden_states), k
            else:
                assert va == vb, k


def test_negative_pose_node_is_bit_identical_to_the_third_output(comfy, vae, built):
    """SteadyDancerNegativePoseConditioning on SteadyDancerConditioning's positive gives exactly the
    negative_pose that SteadyDancerConditioning gives with negative_pose_frames: every key, every
    tensor bit for bit, and the negative-pose latent is the VAE latent of the resized frames."""
    from comfyui_steadydancer.nodes_conditioning import KEY_POSE, SteadyDancerConditioning, SteadyDancerNegativePoseConditioning, _resize

    pos, _, neg_pose, _ = built
    (node_out,) = SteadyDancerNegativePoseConditioning.execute(positive=pos, vae=vae, negative_pose_frames=frames(LENGTH, 7), width=W, height=H, length=LENGTH).result
    _same_conditioning(node_out, neg_pose)
    # the contract: positive text + every positive key, only the pose latent replaced
    expected = [[pos[0][0], {**pos[0][1], KEY_POSE: vae.encode(_resize(frames(LENGTH, 7), W, H))}]]
    _same_conditioning(node_out, expected)
    # without negative_pose_frames SteadyDancerConditioning still gives the same positive, negative and
    # latent, and no negative_pose
    p2, n2, np2, lat2 = SteadyDancerConditioning.execute(**_conditioning_args(vae)).result
    assert np2 is None
    _same_conditioning(p2, built[0])
    _same_conditioning(n2, built[1])
    assert torch.equal(lat2["samples"], built[3]["samples"])


def test_vae_encodes_without_and_with_negative_poses(comfy, vae):
    """The frames SteadyDancerConditioning encodes: concat (length), reference (1), first pose (1),
    poses (length), and the negative poses (length) only when negative_pose_frames is given."""
    from comfyui_steadydancer.nodes_conditioning import build_conditioning, negative_pose_conditioning

    counting = CountingVAE(vae)
    pos, *_ = build_conditioning(**_conditioning_args(counting))
    assert sorted(counting.frames) == sorted([LENGTH, 1, 1, LENGTH])
    counting.frames.clear()
    build_conditioning(**_conditioning_args(counting, negative_pose_frames=frames(LENGTH, 7)))
    assert sorted(counting.frames) == sorted([LENGTH, 1, 1, LENGTH, LENGTH])
    counting.frames.clear()
    negative_pose_conditioning(pos, counting, frames(LENGTH, 7), W, H, LENGTH)
    assert counting.frames == [LENGTH]


def test_negative_pose_node_bad_inputs(comfy, vae, built):
    from comfyui_steadydancer.nodes_conditioning import negative_pose_conditioning

    pos = built[0]
    with pytest.raises(ValueError, match="positive output of SteadyDancer Conditioning"):
        negative_pose_conditioning([[torch.zeros(1, 7, 64), {}]], vae, frames(LENGTH, 7), W, H, LENGTH)
    with pytest.raises(ValueError, match="negative_pose_frames has 3 frames but length=5"):
        negative_pose_conditioning(pos, vae, frames(3, 7), W, H, LENGTH)
    with pytest.raises(ValueError, match="width, height and length of SteadyDancer Conditioning"):
        negative_pose_conditioning(pos, vae, frames(LENGTH, 7), W + 16, H, LENGTH)
    with pytest.raises(ValueError, match="4n\\+1"):
        negative_pose_conditioning(pos, vae, frames(LENGTH, 7), W, H, 6)
