"""Parity: our SteadyDancer on ComfyUI's WanModel vs the official forward (goldens), every layout.

The goldens come from ``make_goldens.py`` (the official code as oracle). They hold the oracle
outputs for fp32 recipe weights and for the fp16 / fp8-scaled files written from the same
weights, so each layout is compared with the oracle on exactly the weights that layout's file
carries (1e-4, fp32 compute). For fp8 that is the Kijai-style file as stored: fp8 × scale_weight
for the block Linears, fp16 for what it keeps in high precision (head, embeddings) — the loader
must not re-quantise those. The fp8 layout is also compared with the *unquantised* fp32 oracle
within a tolerance derived from e4m3 rounding (see ``fp8_tolerance``).
"""

import math

import numpy as np
import pytest
import torch

import golden_recipe as R
from sd_helpers import forward, load_golden, recipe_weights

LAYOUT_VARIANT = {"official": "fp32", "kj-fp16": "fp16", "kj-fp8-scaled": "fp8"}


@pytest.fixture(scope="module")
def golden():
    return load_golden()


@pytest.fixture(scope="module")
def weights(comfy, golden):
    w = recipe_weights()
    assert R.fingerprint(w) == golden[1]["weights_sha256"], "recipe weights differ from the goldens' (key names, shapes or the generator changed)"
    return w


@pytest.fixture(scope="module")
def models(comfy, weights, tmp_path_factory):
    from comfyui_steadydancer.steadydancer.layouts import write_layout
    from comfyui_steadydancer.steadydancer.loading import load_steadydancer

    d = tmp_path_factory.mktemp("layouts")
    paths = {"official": d / "official", "kj-fp16": d / "sd_fp16.safetensors", "kj-fp8-scaled": d / "sd_fp8_e4m3fn_scaled_KJ.safetensors"}
    out = {}
    for layout, p in paths.items():
        write_layout(weights, layout, p, config=R.CONFIG)  # the files say their head count
        out[layout] = load_steadydancer(p)
        out[layout].steadydancer_path = p
    return out


def test_shared_inputs_match_golden(golden):
    assert R.fingerprint(R.shared_inputs()) == golden[1]["shared_sha256"]


def test_golden_covers_two_sizes_and_two_frame_counts(golden):
    cases = golden[1]["cases"].values()
    assert len({tuple(c[1:]) for c in cases}) >= 2 and len({c[0] for c in cases}) >= 2


@pytest.mark.parametrize("layout", list(LAYOUT_VARIANT))
def test_layout_detected(models, layout):
    assert models[layout].steadydancer_layout == layout


@pytest.mark.parametrize("case", list(R.CASES))
@pytest.mark.parametrize("layout", list(LAYOUT_VARIANT))
def test_forward_matches_official(models, golden, layout, case):
    ref = golden[0][f"{case}/out/{LAYOUT_VARIANT[layout]}"]
    ours = forward(models[layout], case)
    assert ours.shape == ref.shape
    err = float(np.abs(ours - ref).max())
    rel = float(np.sqrt(((ours - ref) ** 2).mean() / (ref**2).mean()))
    print(f"{layout}/{case} vs official: max abs {err:.3g}, relative RMS {rel:.3g}")
    assert err <= 1e-4, f"{layout}/{case}: max abs error {err:.3g} > 1e-4 (relative RMS {rel:.3g})"


def fp8_tolerance(n_linear_in_path):
    """Relative-RMS bound for fp8-scaled weights vs the unquantised fp32 oracle.

    e4m3fn keeps 3 mantissa bits: round-to-nearest changes a weight by at most half a unit in
    the last place, i.e. ≤ 2^-4 of its magnitude (at the bottom of a binade), uniformly
    distributed, so its RMS relative error is ≤ 2^-4/√3 ≈ 0.036 (per-tensor scaling keeps every
    weight in the normal range). A Linear with independent weight errors perturbs its output by
    the same relative RMS; errors of successive Linears on the signal path add in quadrature,
    so after n of them the relative RMS error is ≤ √n · 0.036. The pass is fp32 otherwise.
    """
    return math.sqrt(n_linear_in_path) * 2**-4 / math.sqrt(3)


@pytest.mark.parametrize("case", list(R.CASES))
def test_fp8_within_e4m3_rounding_of_fp32(models, golden, case):
    ref = golden[0][f"{case}/out/fp32"]
    ours = forward(models["kj-fp8-scaled"], case)
    # fp8 Linears on the signal path: per block self-attn v,o + cross-attn v,o + ffn (2); the
    # file keeps text_embedding and head in fp16 (and the loader keeps them so)
    n = R.CONFIG["num_layers"] * 6
    rel = float(np.sqrt(((ours - ref) ** 2).mean() / (ref**2).mean()))
    print(f"fp8 vs fp32 {case}: relative RMS error {rel:.4f} (bound {fp8_tolerance(n):.4f})")
    assert rel <= fp8_tolerance(n), f"relative RMS error {rel:.4f} > {fp8_tolerance(n):.4f}"
    assert rel > 0, "fp8 weights should not reproduce fp32 exactly (were they quantised at all?)"


def test_fp8_weights_stay_fp8_in_memory(models):
    dm = models["kj-fp8-scaled"].model.diffusion_model
    assert dm.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn
    assert dm.blocks[1].ffn[2].weight.dtype == torch.float8_e4m3fn
    assert float(dm.blocks[0].self_attn.q.scale_weight) > 0
    # the pose modules were kept in high precision by the file, and stay so
    assert dm.condition_embedding_spatial.fc_phi.weight.dtype != torch.float8_e4m3fn


def test_fp8_file_tensors_kept_as_stored(models):
    """Every tensor of the scaled-fp8 file is in the model bit for bit, in the file's dtype:
    fp8 with its scale_weight, the Linears it keeps in fp16 (head.head, img_emb.proj, text_ /
    time_embedding, time_projection) in fp16, not re-quantised."""
    from safetensors import safe_open

    patcher = models["kj-fp8-scaled"]
    ours = patcher.model.diffusion_model.state_dict()
    with safe_open(str(patcher.steadydancer_path), framework="pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys() if k != "scaled_fp8"}
    hp_linears = ("head.head.weight", "img_emb.proj.1.weight", "img_emb.proj.3.weight", "text_embedding.0.weight", "text_embedding.2.weight", "time_embedding.0.weight", "time_projection.1.weight")
    assert all(stored[k].dtype == torch.float16 for k in hp_linears), "the test file should keep these in fp16"
    bits = lambda t: t.view(torch.uint8) if t.dtype == torch.float8_e4m3fn else t  # noqa: E731
    changed = [f"{k}: file {v.dtype} → model {ours[k].dtype}" for k, v in stored.items() if not (ours[k].dtype == v.dtype and ours[k].shape == v.shape and torch.equal(bits(ours[k]), bits(v)))]
    assert not changed, f"{len(changed)} tensors not as stored, e.g. {changed[:5]}"
    for k in hp_linears:  # no scale of their own: exactly the stored weight
        assert float(ours[k.replace(".weight", ".scale_weight")]) == 1.0


def test_fp8_requantisation_only_when_asked(comfy, models):
    """weight_dtype fp8_e4m3fn on a scaled file: the user asks for fp8 storage, so the fp16
    backbone Linears get their own scale; the pose modules and the file's fp8 stay as stored."""
    from comfyui_steadydancer.steadydancer.loading import load_steadydancer

    p = models["kj-fp8-scaled"].steadydancer_path
    dm = load_steadydancer(p, weight_dtype="fp8_e4m3fn").model.diffusion_model
    assert dm.head.head.weight.dtype == torch.float8_e4m3fn and float(dm.head.head.scale_weight) != 1.0
    ref = models["kj-fp8-scaled"].model.diffusion_model
    assert torch.equal(dm.blocks[0].self_attn.q.weight.view(torch.uint8), ref.blocks[0].self_attn.q.weight.view(torch.uint8))
    assert dm.condition_embedding_spatial.fc_phi.weight.dtype == torch.float16
    # an explicit 16/32-bit dtype stores the high-precision tensors in it; fp8 stays fp8
    dm = load_steadydancer(p, weight_dtype="bf16").model.diffusion_model
    assert dm.head.head.weight.dtype == torch.bfloat16 and dm.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn


def test_pose_changes_output(models, golden):
    """The pose path is live: another pose latent gives another output."""
    g = golden[0]
    inp = {k: torch.from_numpy(g[f"t2_4x4/in/{k}"]) for k in ("noise", "y", "condition", "ref_lat", "pose_ref_lat", "t")}
    base = forward(models["official"], "t2_4x4", inp)
    inp["condition"] = inp["condition"].flip(1)
    assert np.abs(forward(models["official"], "t2_4x4", inp) - base).max() > 1e-3


def test_batch_of_two_equals_two_single_runs(models, golden):
    """ComfyUI batches cond/uncond: samples must not mix (the official align unit runs one sample)."""
    g = golden[0]
    one = {k: torch.from_numpy(g[f"t2_6x8/in/{k}"]) for k in ("noise", "y", "condition", "ref_lat", "pose_ref_lat", "t")}
    two = dict(one, condition=one["condition"].roll(1, dims=1), noise=one["noise"] * 0.5)
    dm = models["official"].model.diffusion_model
    shared = R.shared_inputs()
    stack = lambda k: torch.stack([one[k], two[k]])  # noqa: E731
    with torch.no_grad():
        both = dm(
            torch.cat([stack("noise"), stack("y")], 1),
            torch.cat([one["t"], one["t"]]),
            shared["context"][None].repeat(2, 1, 1),
            clip_fea=shared["clip_x"].repeat(2, 1, 1),
            sd_pose=stack("condition"),
            sd_ref=stack("ref_lat"),
            sd_pose_ref=stack("pose_ref_lat"),
            sd_clip_pose=shared["clip_c"].repeat(2, 1, 1),
        ).numpy()
    assert np.abs(both[0] - forward(models["official"], "t2_6x8", one)).max() <= 1e-4
    assert np.abs(both[1] - forward(models["official"], "t2_6x8", two)).max() <= 1e-4


def _run(dm, inp, **extra):
    shared = R.shared_inputs()
    with torch.no_grad():
        return dm(
            torch.cat([inp["noise"], inp["y"]])[None],
            inp["t"],
            shared["context"][None],
            clip_fea=shared["clip_x"],
            sd_pose=inp["condition"][None],
            sd_ref=inp["ref_lat"][None],
            sd_pose_ref=inp["pose_ref_lat"][None],
            sd_clip_pose=shared["clip_c"],
            **extra,
        ).numpy()


def test_pose_window_and_strengths(models, golden):
    g = golden[0]
    inp = {k: torch.from_numpy(g[f"t2_4x4/in/{k}"]) for k in ("noise", "y", "condition", "ref_lat", "pose_ref_lat", "t")}
    other = dict(inp, condition=inp["condition"].flip(1))
    dm = models["official"].model.diffusion_model
    t = float(inp["t"])
    outside = (t - 100.0, t - 200.0)  # the window lies after this step: pose dropped
    assert np.array_equal(_run(dm, inp, sd_pose_t_range=outside), _run(dm, other, sd_pose_t_range=outside))
    inside = (t + 1.0, t - 1.0)
    assert np.abs(_run(dm, inp, sd_pose_t_range=inside) - _run(dm, inp)).max() == 0
    # strengths scale the temporal / spatial branches: (1, 1) is the official model
    assert np.abs(_run(dm, inp, sd_pose_strength=(1.0, 1.0)) - g["t2_4x4/out/fp32"]).max() <= 1e-4
    assert np.abs(_run(dm, inp, sd_pose_strength=(0.0, 1.0)) - g["t2_4x4/out/fp32"]).max() > 1e-3
