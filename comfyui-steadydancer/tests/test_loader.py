"""Loading SteadyDancer checkpoints into a ComfyUI MODEL: layouts, node, and clear errors."""

import json

import pytest
import torch
from safetensors.torch import save_file

from golden_recipe import CONFIG
from sd_helpers import recipe_weights


@pytest.fixture(scope="module")
def weights(comfy):
    return recipe_weights()


@pytest.fixture(scope="module")
def sd_mod(comfy):
    from comfyui_steadydancer import steadydancer
    from comfyui_steadydancer.steadydancer import convert, layouts, loading  # noqa: F401

    return steadydancer


def _model_is_comfy(patcher):
    import comfy.model_patcher
    from comfyui_steadydancer.steadydancer.model import SteadyDancerWanModel
    from comfyui_steadydancer.steadydancer.model_base import SteadyDancerWAN

    assert isinstance(patcher, comfy.model_patcher.ModelPatcher)
    assert isinstance(patcher.model, SteadyDancerWAN)
    assert isinstance(patcher.model.diffusion_model, SteadyDancerWanModel)


def test_sizes_read_from_weights(sd_mod, weights):
    cfg = sd_mod.convert.config_from_state_dict(weights, num_heads=2)
    assert (cfg["dim"], cfg["ffn_dim"], cfg["num_layers"], cfg["in_dim"], cfg["text_dim"]) == (256, 512, 2, 36, 64)
    assert (cfg["num_heads"], cfg["align_hidden"], cfg["dy_dim"], cfg["dy_squeeze"]) == (2, 128, 4, 4)


# --- attention head count: not in the weights (every projection is dim × dim) ---------------


def _heads(patcher):
    dm = patcher.model.diffusion_model
    assert {b.self_attn.num_heads for b in dm.blocks} == {dm.num_heads}
    return dm.num_heads


def test_head_count_known_model_table(sd_mod):
    resolve = sd_mod.convert.resolve_num_heads
    assert resolve(5120) == (40, "known model table")  # Wan2.1 14B / SteadyDancer-14B
    assert resolve(1536) == (12, "known model table")  # Wan2.1 1.3B
    # what the checkpoint declares wins over the table, an explicit override over both
    assert resolve(5120, declared=(20, "checkpoint metadata")) == (20, "checkpoint metadata")
    assert resolve(5120, num_heads=64, declared=(20, "checkpoint metadata")) == (64, "num_heads override")


def test_unknown_width_without_metadata_is_an_error(sd_mod, weights, tmp_path):
    """dim 256 with no metadata: the old loader guessed dim // 128 = 2 heads; now it asks."""
    p = sd_mod.layouts.write_layout(weights, "kj-fp16", tmp_path / "sd_fp16.safetensors")
    with pytest.raises(sd_mod.convert.CheckpointError, match=r"attention head count.*dim=256 is not a known model size.*Set num_heads on the SteadyDancer Model Loader"):
        sd_mod.loading.load_steadydancer(p)
    assert _heads(sd_mod.loading.load_steadydancer(p, num_heads=4)) == 4


def test_head_count_from_safetensors_metadata(sd_mod, weights, tmp_path):
    """4 heads of 64: the file's metadata ``config`` says so (dim // 128 would give 2)."""
    for layout in ("kj-fp16", "kj-fp8-scaled"):
        p = sd_mod.layouts.write_layout(weights, layout, tmp_path / f"{layout}.safetensors", config={"dim": 256, "num_heads": 4})
        assert _heads(sd_mod.loading.load_steadydancer(p)) == 4


def test_head_count_from_diffusers_config_json(sd_mod, weights, tmp_path):
    """The official sharded layout: diffusers config.json beside the index (WanModel.from_pretrained reads it)."""
    d = sd_mod.layouts.write_layout(weights, "official", tmp_path / "official", config={"dim": 256, "num_heads": 4})
    assert json.loads((d / "config.json").read_text())["num_heads"] == 4
    assert _heads(sd_mod.loading.load_steadydancer(d)) == 4
    assert _heads(sd_mod.loading.load_steadydancer(d / "diffusion_pytorch_model-00001-of-00002.safetensors")) == 4


def test_config_json_only_for_diffusers_saves(sd_mod, weights, tmp_path):
    """A diffusers single-file save (diffusion_pytorch_model.safetensors + config.json) declares its
    heads; a config.json that merely lies in the folder of another file does not."""
    (tmp_path / "config.json").write_text(json.dumps({"num_heads": 4}))
    p = sd_mod.layouts.write_layout(weights, "kj-fp16", tmp_path / "other_fp16.safetensors")
    with pytest.raises(sd_mod.convert.CheckpointError, match="Set num_heads"):
        sd_mod.loading.load_steadydancer(p)
    d = tmp_path / "diffusers"
    d.mkdir()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(d / "diffusion_pytorch_model.safetensors"))
    (d / "config.json").write_text(json.dumps({"_class_name": "WanModel", "num_heads": 4}))
    assert _heads(sd_mod.loading.load_steadydancer(d)) == 4


@pytest.mark.parametrize(
    "declared, msg",
    [
        ({"num_heads": 3}, r"declares num_heads=3, which does not divide the model width dim=256"),
        ({"num_heads": "two"}, r"num_heads='two'; expected a positive integer"),
        ({"num_heads": 0}, r"num_heads=0; expected a positive integer"),
    ],
)
def test_bad_declared_head_count(sd_mod, weights, tmp_path, declared, msg):
    p = sd_mod.layouts.write_layout(weights, "kj-fp16", tmp_path / "bad.safetensors", config=declared)
    with pytest.raises(sd_mod.convert.CheckpointError, match=msg):
        sd_mod.loading.load_steadydancer(p)


def test_override_must_divide_the_width(sd_mod, weights, tmp_path):
    p = sd_mod.layouts.write_layout(weights, "kj-fp16", tmp_path / "sd.safetensors", config={"num_heads": 2})
    with pytest.raises(sd_mod.convert.CheckpointError, match=r"num_heads=3 does not divide the model width dim=256"):
        sd_mod.loading.load_steadydancer(p, num_heads=3)
    assert _heads(sd_mod.loading.load_steadydancer(p, num_heads=8)) == 8  # the override wins over the metadata


def test_loader_node_num_heads_override(comfy, sd_mod, weights, tmp_path):
    import folder_paths

    p = sd_mod.layouts.write_layout(weights, "kj-fp16", tmp_path / "no_metadata_fp16.safetensors")
    folder_paths.add_model_folder_path("diffusion_models", str(tmp_path))
    node = comfy.nodes_model.SteadyDancerModelLoader
    spec = node.INPUT_TYPES()
    assert spec["optional"]["num_heads"][1]["default"] == 0 and set(spec["required"]) == {"model_name", "weight_dtype"}
    with pytest.raises(sd_mod.convert.CheckpointError, match="Set num_heads"):
        node.execute(p.name, "default")
    (patcher,) = node.execute(p.name, "default", num_heads=4).result
    assert _heads(patcher) == 4


def test_prefixed_kj_file_with_weight_scale_alias_loads(sd_mod, weights, tmp_path):
    fp8 = sd_mod.layouts.to_fp8_scaled(weights)
    renamed = {"model.diffusion_model." + k.replace(".scale_weight", ".weight_scale"): v for k, v in fp8.items()}
    p = tmp_path / "prefixed_fp8_scaled_KJ.safetensors"
    save_file(renamed, str(p))
    patcher = sd_mod.loading.load_steadydancer(p, num_heads=2)
    _model_is_comfy(patcher)
    assert patcher.steadydancer_layout == "kj-fp8-scaled"
    q = patcher.model.diffusion_model.blocks[0].self_attn.q
    assert float(q.scale_weight) == float(fp8["blocks.0.self_attn.q.scale_weight"])


def test_fp8_weight_dtype_option_on_fp16_file(sd_mod, weights, tmp_path):
    p = sd_mod.layouts.write_layout(weights, "kj-fp16", tmp_path / "sd_fp16.safetensors", config=CONFIG)
    patcher = sd_mod.loading.load_steadydancer(p, weight_dtype="fp8_e4m3fn")
    assert patcher.model.diffusion_model.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn


def test_bad_weight_dtype(sd_mod, weights):
    with pytest.raises(ValueError, match="weight_dtype must be one of"):
        sd_mod.loading.load_state_dict_model(dict(weights), weight_dtype="int4", num_heads=2)


def test_not_steadydancer(sd_mod, weights, tmp_path):
    plain_wan = {k: v for k, v in weights.items() if not k.startswith(("condition_embedding_", "patch_embedding_"))}
    p = tmp_path / "wan21_i2v.safetensors"
    save_file({k: v.half() for k, v in plain_wan.items()}, str(p))
    with pytest.raises(sd_mod.convert.CheckpointError, match="not a SteadyDancer checkpoint.*Wan model without"):
        sd_mod.loading.load_steadydancer(p)


def test_truncated_file(sd_mod, weights, tmp_path):
    p = sd_mod.layouts.write_layout(weights, "kj-fp16", tmp_path / "sd.safetensors")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 4096])
    with pytest.raises(sd_mod.convert.CheckpointError, match="truncated file.*download it again"):
        sd_mod.loading.load_steadydancer(p)


def test_truncated_header(sd_mod, tmp_path):
    p = tmp_path / "tiny.safetensors"
    p.write_bytes(b"\x00\x01")
    with pytest.raises(sd_mod.convert.CheckpointError, match="truncated"):
        sd_mod.loading.load_steadydancer(p)


def test_missing_key(sd_mod, weights, tmp_path):
    w = {k: v.half() for k, v in weights.items() if k != "blocks.1.ffn.2.weight"}
    p = tmp_path / "missing.safetensors"
    save_file(w, str(p))
    with pytest.raises(sd_mod.convert.CheckpointError, match=r"incomplete: 1 missing key.*blocks\.1\.ffn\.2\.weight"):
        sd_mod.loading.load_steadydancer(p, num_heads=2)


def test_sharded_index_missing_shard_key(sd_mod, weights, tmp_path):
    d = sd_mod.layouts.write_layout(weights, "official", tmp_path / "official")
    idx = d / "diffusion_pytorch_model.safetensors.index.json"
    j = json.loads(idx.read_text())
    j["weight_map"]["blocks.9.extra.weight"] = "diffusion_pytorch_model-00001-of-00002.safetensors"
    idx.write_text(json.dumps(j))
    with pytest.raises(sd_mod.convert.CheckpointError, match="index lists 1 keys the shards lack"):
        sd_mod.loading.load_steadydancer(d)


def test_no_such_file(sd_mod, tmp_path):
    with pytest.raises(sd_mod.convert.CheckpointError, match="no such file"):
        sd_mod.loading.load_steadydancer(tmp_path / "nope.safetensors")


def test_loader_node_reads_diffusion_models_folder(comfy, sd_mod, weights, tmp_path):
    import folder_paths

    p = sd_mod.layouts.write_layout(weights, "kj-fp8-scaled", tmp_path / "Wan21_SteadyDancer_fp8_e4m3fn_scaled_KJ.safetensors", config=CONFIG)
    folder_paths.add_model_folder_path("diffusion_models", str(tmp_path))
    node = comfy.nodes_model.SteadyDancerModelLoader
    assert p.name in node.INPUT_TYPES()["required"]["model_name"][1]["options"]
    (patcher,) = node.execute(p.name, "default").result
    _model_is_comfy(patcher)
    assert patcher.model.diffusion_model.blocks[0].self_attn.k.weight.dtype == torch.float8_e4m3fn


def test_one_shard_of_official_layout_loads_the_whole_checkpoint(comfy, sd_mod, weights, tmp_path):
    """ComfyUI lists the shards of diffusion_models/<dir>/: picking any one loads all of them."""
    import folder_paths

    d = sd_mod.layouts.write_layout(weights, "official", tmp_path / "SteadyDancer-14B", config=CONFIG)
    folder_paths.add_model_folder_path("diffusion_models", str(tmp_path))
    name = "SteadyDancer-14B/diffusion_pytorch_model-00002-of-00002.safetensors"
    assert name in folder_paths.get_filename_list("diffusion_models")
    (patcher,) = comfy.nodes_model.SteadyDancerModelLoader.execute(name, "default").result
    assert patcher.steadydancer_layout == "official"
    assert torch.equal(patcher.model.diffusion_model.blocks[1].ffn[2].weight, weights["blocks.1.ffn.2.weight"])
    assert d.is_dir()
