"""The tiny end-to-end fixture (fixtures/make_tiny_models.py) is an official SteadyDancer model.

It is built from the official source with 2 heads of 64 channels (dim 128: not the 14B's head
size of 128, so ``dim // 128`` would be wrong) and says so in its safetensors metadata
``config``. Our loader must read that head count, and our forward must equal the official
forward (make_goldens' oracle: the official modules unchanged, exact attention, fp32) on the
file's own weights, at a shape the parity goldens do not use. The e2e tests
(test/helpers/tiny-models.ts) load this same file through the loader node, without an override.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fixtures"))

T, H, W, TOKENS = 3, 4, 6, 9  # latent frames and size, text tokens


@pytest.fixture(scope="module")
def fixture_file(comfy, official_source, tmp_path_factory):
    import make_tiny_models

    path, _, config = make_tiny_models.write_steadydancer(official_source, tmp_path_factory.mktemp("tiny"), "fp8")
    return path, config


@pytest.fixture(scope="module")
def stored(fixture_file):
    with safe_open(str(fixture_file[0]), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


@pytest.fixture(scope="module")
def inputs(fixture_file):
    c = fixture_file[1]
    g = torch.Generator().manual_seed(11)
    lat = lambda ch, t=T: torch.randn(ch, t, H, W, generator=g)  # noqa: E731
    mask = torch.zeros(4, T, H, W)
    mask[:, 0] = 1.0
    return dict(noise=lat(16), y=torch.cat([mask, lat(16)]), condition=lat(16), ref_lat=lat(16, 1), pose_ref_lat=lat(16, 1), t=torch.tensor([604.0])), dict(
        context=0.5 * torch.randn(TOKENS, c["text_dim"], generator=g), clip_x=torch.randn(1, 257, 1280, generator=g), clip_c=torch.randn(1, 257, 1280, generator=g)
    )


@pytest.fixture(scope="module")
def official_out(official_source, fixture_file, stored, inputs):
    import make_goldens

    md = make_goldens.load_official(official_source)
    m = md.WanModel(**fixture_file[1], cross_attn_norm=True, qk_norm=True, eps=1e-6)
    m.load_state_dict({k: v.float() for k, v in stored[0].items()}, strict=True)
    return make_goldens.run_official(m.eval().float(), *inputs).float().numpy()


def ours(patcher, inputs):
    inp, shared = inputs
    dm = patcher.model.diffusion_model
    with torch.no_grad():
        out = dm(
            torch.cat([inp["noise"], inp["y"]])[None],
            inp["t"],
            shared["context"][None],
            clip_fea=shared["clip_x"],
            sd_pose=inp["condition"][None],
            sd_ref=inp["ref_lat"][None],
            sd_pose_ref=inp["pose_ref_lat"][None],
            sd_clip_pose=shared["clip_c"],
        )
    return out[0].float().numpy()


def test_fixture_declares_an_official_config_with_head_size_not_128(stored, fixture_file):
    config = json.loads(stored[1]["config"])
    assert config == fixture_file[1]
    assert config["dim"] // config["num_heads"] != 128, "the fixture must exercise a head size other than 128"


def test_loader_reads_the_true_head_count(comfy, fixture_file):
    from comfyui_steadydancer.steadydancer.loading import load_steadydancer

    dm = load_steadydancer(fixture_file[0]).model.diffusion_model
    assert dm.num_heads == fixture_file[1]["num_heads"] == 2
    assert all(b.self_attn.num_heads == 2 and b.cross_attn.num_heads == 2 for b in dm.blocks)


def test_forward_matches_official_on_the_fixture(comfy, fixture_file, inputs, official_out):
    from comfyui_steadydancer.steadydancer.loading import load_steadydancer

    out = ours(load_steadydancer(fixture_file[0]), inputs)
    assert out.shape == official_out.shape == (16, T, H, W)
    assert float(np.abs(official_out).std()) > 0.05, "fixture output is degenerate (zero head?)"
    err = float(np.abs(out - official_out).max())
    print(f"tiny fixture vs official: max abs error {err:.3g}")
    assert err <= 1e-4, f"max abs error {err:.3g} > 1e-4"


def test_a_wrong_head_count_is_visible(comfy, fixture_file, inputs, official_out):
    """What ``dim // 128`` loaded (1 head): the parity check above tells it apart."""
    from comfyui_steadydancer.steadydancer.loading import load_steadydancer

    out = ours(load_steadydancer(fixture_file[0], num_heads=1), inputs)
    rel = float(np.sqrt(((out - official_out) ** 2).mean() / (official_out**2).mean()))
    print(f"tiny fixture loaded with 1 head: relative RMS error {rel:.3g}")
    assert rel > 1e-2


def test_without_metadata_an_unknown_width_needs_the_override(comfy, stored, fixture_file, inputs, official_out, tmp_path):
    from comfyui_steadydancer.steadydancer.convert import CheckpointError
    from comfyui_steadydancer.steadydancer.loading import load_steadydancer

    bare = tmp_path / "no_metadata.safetensors"
    save_file(stored[0], str(bare))
    with pytest.raises(CheckpointError, match=r"dim=128 is not a known model size.*Set num_heads"):
        load_steadydancer(bare)
    out = ours(load_steadydancer(bare, num_heads=2), inputs)
    assert float(np.abs(out - official_out).max()) <= 1e-4
