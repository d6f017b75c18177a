"""The pack as ComfyUI and the Comfy Registry expect it: ComfyUI core (pinned commit) loads it with
its own loader through the v3 ``comfy_entrypoint``, every node of the shipped workflows is then
registered, every pack node is a v3 ``io.ComfyNode``, and ``pyproject.toml`` carries the
registry's ``[project]`` / ``[tool.comfy]`` fields (parsed by ComfyUI's own ``comfy_config``)."""

import asyncio
import importlib
import inspect
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

from pack_loader import PACK_DIR

REPO = PACK_DIR.parent
WORKFLOWS = REPO / "docker" / "workflows"
PYPROJECT = PACK_DIR / "pyproject.toml"


@pytest.fixture(scope="module")
def core(comfyui_source):
    """ComfyUI's node registry with the built-in extra nodes and our pack loaded by ComfyUI itself."""
    import comfy_env

    comfy_env.setup_comfy(comfyui_source)
    import nodes

    asyncio.run(nodes.init_builtin_extra_nodes())
    before = set(nodes.NODE_CLASS_MAPPINGS)
    ok = asyncio.run(nodes.load_custom_node(str(PACK_DIR), before, module_parent="custom_nodes"))
    return nodes, ok, before


def test_comfyui_loads_the_pack_through_comfy_entrypoint(core):
    nodes, ok, before = core
    assert ok is True
    module = sys.modules[str(PACK_DIR).replace(".", "_x_")]
    # the pinned loader only reaches its v3 branch when there is no NODE_CLASS_MAPPINGS
    assert not hasattr(module, "NODE_CLASS_MAPPINGS")
    assert inspect.iscoroutinefunction(module.comfy_entrypoint)
    ours = set(nodes.NODE_CLASS_MAPPINGS) - before
    ids = [n.GET_SCHEMA().node_id for n in module.NODES]
    assert len(ids) == len(set(ids)), f"node ids defined twice: {ids}"
    assert ours == set(ids)
    for cls in module.NODES:
        node_id = cls.GET_SCHEMA().node_id
        assert nodes.NODE_CLASS_MAPPINGS[node_id] is cls
        assert cls.RELATIVE_PYTHON_MODULE == f"custom_nodes.{PACK_DIR.name}"
        assert nodes.NODE_DISPLAY_NAME_MAPPINGS[node_id] == cls.GET_SCHEMA().display_name


def _api_nodes():
    wf = json.loads((WORKFLOWS / "steadydancer-dance.api.json").read_text())
    return {k: v for k, v in wf.items() if isinstance(v, dict) and "class_type" in v}


def test_every_node_of_the_shipped_workflows_is_registered(core):
    nodes = core[0]
    api = _api_nodes()
    ui = json.loads((WORKFLOWS / "steadydancer-dance.json").read_text())
    types = {n["class_type"] for n in api.values()} | {n["type"] for n in ui["nodes"]}
    missing = sorted(types - set(nodes.NODE_CLASS_MAPPINGS))
    assert not missing, f"workflow node types ComfyUI does not know: {missing}"
    for nid, n in api.items():
        spec = nodes.NODE_CLASS_MAPPINGS[n["class_type"]].INPUT_TYPES()
        known = set(spec.get("required", {})) | set(spec.get("optional", {}))
        unknown = set(n["inputs"]) - known
        assert not unknown, f"node {nid} ({n['class_type']}): inputs {sorted(unknown)} not in its schema"


def test_every_pack_node_is_on_the_v3_schema(core):
    from comfy_api.latest import ComfyExtension, io

    nodes = core[0]
    module = sys.modules[str(PACK_DIR).replace(".", "_x_")]
    ext = asyncio.run(module.comfy_entrypoint())
    assert isinstance(ext, ComfyExtension)
    listed = asyncio.run(ext.get_node_list())
    defined = []
    for path in sorted(PACK_DIR.glob("nodes_*.py")):
        mod = importlib.import_module(f"{module.__name__}.{path.stem}")
        assert not hasattr(mod, "NODE_CLASS_MAPPINGS"), f"{path.name} still has a v1 NODE_CLASS_MAPPINGS"
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != mod.__name__:
                continue
            assert "INPUT_TYPES" not in cls.__dict__ and "FUNCTION" not in cls.__dict__, f"{path.name}: {cls.__name__} uses the v1 node API"
            if issubclass(cls, io.ComfyNode):
                defined.append(cls)
    assert set(listed) == set(defined) and len(listed) == len(defined)
    for cls in listed:
        info = cls.GET_NODE_INFO_V1()
        assert info["category"].startswith("SteadyDancer")
    # the two nodes that used the v1 API keep their inputs and outputs
    loader = nodes.NODE_CLASS_MAPPINGS["SteadyDancerModelLoader"].GET_NODE_INFO_V1()
    assert list(loader["input"]["required"]) == ["model_name", "weight_dtype"] and loader["output"] == ["MODEL"]
    assert list(loader["input"]["optional"]) == ["num_heads"]
    assert loader["input"]["optional"]["num_heads"][1]["default"] == 0
    assert loader["input"]["required"]["weight_dtype"][1]["default"] == "default"
    cond = nodes.NODE_CLASS_MAPPINGS["SteadyDancerConditioning"].GET_NODE_INFO_V1()
    assert list(cond["input"]["required"]) == [
        "positive",
        "negative",
        "vae",
        "clip_vision_ref",
        "clip_vision_pose",
        "reference_image",
        "pose_frames",
        "width",
        "height",
        "length",
        "pose_strength_spatial",
        "pose_strength_temporal",
        "pose_start_percent",
        "pose_end_percent",
    ]
    assert list(cond["input"]["optional"]) == ["negative_pose_frames"]  # negative_pose has its own node now
    assert cond["output"] == ["CONDITIONING", "CONDITIONING", "CONDITIONING", "LATENT"]
    assert cond["output_name"] == ["positive", "negative", "negative_pose", "latent"]
    assert cond["input"]["required"]["length"][1] == {"default": 33, "min": 1, "max": 1997, "step": 4}
    neg = nodes.NODE_CLASS_MAPPINGS["SteadyDancerNegativePoseConditioning"].GET_NODE_INFO_V1()
    assert list(neg["input"]["required"]) == ["positive", "vae", "negative_pose_frames", "width", "height", "length"]
    assert neg["output"] == ["CONDITIONING"] and neg["output_name"] == ["negative_pose"]


def _requirements(path: Path):
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_pyproject_has_the_registry_fields():
    doc = tomllib.loads(PYPROJECT.read_text())
    project, comfy = doc["project"], doc["tool"]["comfy"]
    name = project["name"]
    # registry rules for the node id: < 100 chars, alnum/-/_/., no doubled specials, no leading
    # digit or special, and no "ComfyUI" in it
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z](?:[A-Za-z0-9]|[-_.](?=[A-Za-z0-9]))*", name)
    assert "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["description"]
    assert set(project["license"]) <= {"file", "text"} and any(project["license"].values())
    assert re.fullmatch(r"https://\S+", project["urls"]["Repository"])
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert isinstance(comfy["includes"], list)
    assert project["dependencies"] == _requirements(PACK_DIR / "requirements.txt")


def test_comfyui_parses_the_pyproject(comfyui_source):
    pytest.importorskip("pydantic_settings", reason="ComfyUI's comfy_config needs pydantic-settings (comfyui-steadydancer/requirements-dev.txt)")
    import comfy_env

    comfy_env.setup_comfy(comfyui_source)
    from comfy_config import config_parser

    cfg = config_parser.extract_node_configuration(str(PACK_DIR))
    doc = tomllib.loads(PYPROJECT.read_text())
    assert cfg.project.name == doc["project"]["name"] != PACK_DIR.name  # read from the file, not the folder
    assert cfg.project.version == doc["project"]["version"]
    assert cfg.tool_comfy.publisher_id == doc["tool"]["comfy"]["PublisherId"]
    assert cfg.tool_comfy.display_name == doc["tool"]["comfy"]["DisplayName"]
    assert cfg.project.urls.repository == doc["project"]["urls"]["Repository"]
    assert cfg.project.supported_os == ["OS Independent"]  # classifiers ComfyUI accepts
    assert cfg.project.supported_accelerators == ["GPU :: NVIDIA CUDA"]
    assert cfg.project.supported_comfyui_version == doc["tool"]["comfy"]["requires-comfyui"]


def test_missing_rtmlib_says_how_to_install_it(monkeypatch, tmp_path):
    from pack_loader import pack_module

    pe = pack_module("pose_extract")
    for f in (pe.DETECTOR_FILE, pe.POSE_FILE):
        (tmp_path / f).write_bytes(b"onnx")
    monkeypatch.setitem(sys.modules, "rtmlib", None)  # what an install without it looks like
    with pytest.raises(ImportError, match="--no-deps -r requirements-nodeps.txt"):
        pe.DWPoseEstimator(tmp_path / pe.DETECTOR_FILE, tmp_path / pe.POSE_FILE, "cpu")
