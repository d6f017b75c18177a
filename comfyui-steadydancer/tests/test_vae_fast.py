"""vae_fast: the chunked Wan 2.1 VAE encode / decode against ComfyUI core's own (the oracle), bit for bit.

A real ComfyUI Wan 2.1 VAE (the architecture of comfy.sd.VAE's Wan 2.1 branch: dim 96, 16
latent channels, causal temporal 4× compression) with random weights, in float32 on the CPU.
Frames are 8×8 (1×1 latent): the temporal path — chunks, feature cache, the fixed point — is the
full architecture at any spatial size, and a chunk then takes ~1 s here instead of minutes.
"""

import pytest
import torch

from sd_helpers import random_wan_vae

S = 8


@pytest.fixture(scope="module")
def vae(comfy):
    return random_wan_vae()


@pytest.fixture(scope="module")
def vf(comfy):
    from comfyui_steadydancer import vae_fast

    return vae_fast


def rand_frames(n, seed, size=S):
    return torch.rand(n, size, size, 3, generator=torch.Generator().manual_seed(seed))


def ref_then_grey(ref, length):
    video = torch.full((length,) + tuple(ref.shape[1:]), 0.5)
    video[:1] = ref
    return video


def latent_frames(length):
    return 1 + (length - 1) // 4


def test_chunked_encode_is_core_encode_bitwise(vae, vf):
    for n, seed in ((1, 1), (13, 2), (11, 3)):  # one frame; 4n+1; a tail of 2 frames core drops
        v = rand_frames(n, seed, size=16)
        info = {}
        got = vf.encode(vae, v, info=info)
        assert info["path"] == "chunked" and info["repeated"] == 0
        want = vae.encode(v)
        assert got.shape == want.shape == (1, 16, latent_frames(n), 2, 2)
        assert got.dtype == want.dtype and torch.equal(got, want)


# the fixed point: measured for this architecture at 30 latent frames (the cache after chunk 29
# equals the one after chunk 28), in float32 and bfloat16, at 8×8, 16×16 and 32×32
FIXED = 30


@pytest.mark.parametrize("length", [161, 321])
def test_ref_then_grey_shortcut_is_the_full_encode_bitwise(vae, vf, length):
    ref = rand_frames(1, length)
    info = {}
    fast = vf.encode_ref_then_fill(vae, ref, length, 0.5, info=info)
    assert info == {"path": "chunked", "chunks": latent_frames(length), "encoded": FIXED, "repeated": latent_frames(length) - FIXED}
    full = vae.encode(ref_then_grey(ref, length))
    assert fast.shape == full.shape == (1, 16, latent_frames(length), 1, 1)
    assert torch.equal(fast, full)
    if length == 161:  # the same shortcut, found on the materialised video by the generic encode
        info = {}
        assert torch.equal(vf.encode(vae, ref_then_grey(ref, length), info=info), full)
        assert info["encoded"] == FIXED


def test_shortcut_not_taken_before_the_fixed_point(vae, vf, monkeypatch):
    ref = rand_frames(1, 81)
    info = {}
    fast = vf.encode_ref_then_fill(vae, ref, 81, 0.5, info=info)
    assert info["encoded"] == latent_frames(81) and info["repeated"] == 0  # 21 < 30: a full encode
    assert torch.equal(fast, vae.encode(ref_then_grey(ref, 81)))
    monkeypatch.setenv(vf.ENV_REPEAT, "0")
    info = {}
    vf.encode_ref_then_fill(vae, ref, 121, 0.5, info=info)
    assert info["encoded"] == latent_frames(121) and info["repeated"] == 0


def test_shortcut_falls_back_when_the_cache_never_settles(vae, vf):
    """An encoder whose state changes every chunk (a counter added in its middle block): no fixed
    point is ever reached, so no latent frame may be repeated — the result is the full encode."""
    ref = rand_frames(1, 7)
    length = 121  # unperturbed: fixed point at 30 of 31 latent frames (the test above)
    calls = [0]

    def drift(module, args, out):
        calls[0] += 1
        return out + 1e-3 * calls[0]

    h = vae.first_stage_model.encoder.middle[1].register_forward_hook(drift)
    try:
        info = {}
        fast = vf.encode_ref_then_fill(vae, ref, length, info=info)
        assert info["encoded"] == latent_frames(length) and info["repeated"] == 0
        calls[0] = 0
        full = vae.encode(ref_then_grey(ref, length))
    finally:
        h.remove()
    assert torch.equal(fast, full)


def test_batched_encode_matches_separate_within_rounding(vae, vf, monkeypatch):
    a, b = rand_frames(9, 11, size=16), rand_frames(9, 12, size=16)
    sep = [vae.encode(a), vae.encode(b)]
    info = {}
    assert all(torch.equal(x, y) for x, y in zip(vf.encode_many(vae, [a, b], info=info), sep))
    assert info["batched"] is False  # the default: separate, bitwise core
    monkeypatch.setenv(vf.ENV_BATCH, "1")
    info = {}
    got = vf.encode_many(vae, [a, b], info=info)
    assert info["batched"] is True and [g.shape for g in got] == [s.shape for s in sep]
    for g, s in zip(got, sep):  # batch-2 convolutions round differently: not bitwise
        torch.testing.assert_close(g, s, rtol=0, atol=1e-5)


def test_chunked_decode_is_core_decode_bitwise(vae, vf):
    z = torch.randn(1, 16, 6, 2, 2, generator=torch.Generator().manual_seed(5))
    info = {}
    got = vf.decode(vae, z, info=info)
    assert info == {"path": "chunked", "chunks": 6}
    want = vae.decode(z)
    assert got.shape == want.shape == (1, 21, 16, 16, 3)
    assert torch.equal(got, want)


def test_decode_node_is_core_vaedecode_without_its_whole_video_decode(comfy, vae, monkeypatch):
    import nodes
    from comfyui_steadydancer.nodes_vae import SteadyDancerVAEDecode

    z = {"samples": torch.randn(1, 16, 3, 1, 1, generator=torch.Generator().manual_seed(6))}
    want = nodes.VAEDecode().decode(vae, z)[0]

    def whole(*a, **k):
        raise AssertionError("core's whole-video vae.decode was called")

    monkeypatch.setattr(vae, "decode", whole)
    got = SteadyDancerVAEDecode.execute(samples=z, vae=vae).result[0]
    assert got.shape == want.shape == (9, S, S, 3) and torch.equal(got, want)


def test_conditioning_encodes_are_core_encodes_without_whole_video_encodes(comfy, vae, monkeypatch):
    import comfy.clip_vision
    from comfyui_steadydancer.nodes_conditioning import _resize, build_conditioning

    ref, pose, neg = rand_frames(1, 21, 16), rand_frames(9, 22, 16), rand_frames(9, 23, 16)
    ref, pose, neg = (_resize(x, 16, 16) for x in (ref, pose, neg))  # what the node encodes
    want = dict(concat=vae.encode(ref_then_grey(ref, 9)), ref=vae.encode(ref), pose_ref=vae.encode(pose[:1]), pose=vae.encode(pose), neg=vae.encode(neg))
    encoded = []
    real = vae.encode
    monkeypatch.setattr(vae, "encode", lambda px: encoded.append(px.shape[0]) or real(px))
    clip = comfy.clip_vision.Output()
    clip.penultimate_hidden_states = torch.zeros(1, 257, 1280)
    text = [[torch.zeros(1, 7, 64), {}]]
    pos, _, neg_p, _ = build_conditioning(text, text, vae, clip, clip, ref, pose, neg, 16, 16, 9)
    assert encoded == []  # every encode went through vae_fast's chunks
    d, dn = pos[0][1], neg_p[0][1]
    assert torch.equal(d["concat_latent_image"], want["concat"])
    assert torch.equal(d["steadydancer_ref_latent"], want["ref"])
    assert torch.equal(d["steadydancer_pose_ref_latent"], want["pose_ref"])
    assert torch.equal(d["steadydancer_pose_latent"], want["pose"])
    assert torch.equal(dn["steadydancer_pose_latent"], want["neg"])


def test_conditioning_takes_the_one_frame_latents_from_the_video_encodes(comfy, vae, monkeypatch):
    """ref_latent / pose_ref_latent come from the concat and pose encodes' frame-0 chunk: no encoder
    pass of their own (9 frames = 3 chunks per video: concat 3 + pose 3, not 3 + 1 + 1 + 3), and
    still core's one-frame encodes bit for bit (the test above); the core path gives them too."""
    import comfy.clip_vision
    from comfyui_steadydancer.nodes_conditioning import _resize, build_conditioning

    ref, pose = _resize(rand_frames(1, 31, 16), 16, 16), _resize(rand_frames(9, 32, 16), 16, 16)
    calls = []
    real = vae.first_stage_model.encoder.forward
    monkeypatch.setattr(vae.first_stage_model.encoder, "forward", lambda x, *a, **k: calls.append(x.shape[2]) or real(x, *a, **k))
    clip = comfy.clip_vision.Output()
    clip.penultimate_hidden_states = torch.zeros(1, 257, 1280)
    text = [[torch.zeros(1, 7, 64), {}]]
    pos, *_ = build_conditioning(text, text, vae, clip, clip, ref, pose, None, 16, 16, 9)
    assert calls == [1, 4, 4, 1, 4, 4]
    d = pos[0][1]
    want_ref, want_pose_ref = vae.encode(ref), vae.encode(pose[:1])
    assert torch.equal(d["steadydancer_ref_latent"], want_ref) and torch.equal(d["steadydancer_pose_ref_latent"], want_pose_ref)
    monkeypatch.setenv("STEADYDANCER_VAE_CHUNKED", "0")  # core's encodes: the one-frame latents from core too
    calls.clear()
    pos, *_ = build_conditioning(text, text, vae, clip, clip, ref, pose, None, 16, 16, 9)
    assert torch.equal(pos[0][1]["steadydancer_ref_latent"], want_ref) and torch.equal(pos[0][1]["steadydancer_pose_ref_latent"], want_pose_ref)
