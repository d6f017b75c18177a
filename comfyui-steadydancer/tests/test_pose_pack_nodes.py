"""ComfyUI loads the pack the way it loads any custom node folder, and the pose, guidance and
text-cache node types appear with node info that /object_info can serve."""

import asyncio

import torch

from pack_loader import PACK_DIR

OURS = {
    "SteadyDancerPoseModelLoader",
    "SteadyDancerPoseDetect",
    "SteadyDancerPoseAlign",
    "SteadyDancerPoseAugment",
    "SteadyDancerPoseRender",
    "SteadyDancerPosePrep",
    "SteadyDancerGuider",
    "SteadyDancerTextEncodeCached",
}


def test_comfyui_loads_our_nodes(comfyui_source):
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    import nodes

    assert asyncio.run(nodes.load_custom_node(str(PACK_DIR))) is True
    missing = OURS - set(nodes.NODE_CLASS_MAPPINGS)
    assert not missing, f"not registered: {missing}"
    for name in OURS:
        info = nodes.NODE_CLASS_MAPPINGS[name].GET_NODE_INFO_V1()
        assert info["name"] == name and info["category"].startswith("SteadyDancer")
    g = nodes.NODE_CLASS_MAPPINGS["SteadyDancerGuider"].GET_NODE_INFO_V1()
    assert g["output"] == ["GUIDER"]
    assert list(g["input"]["required"]) == ["model", "positive", "negative", "cfg", "pose_cfg", "pose_start", "pose_end"]
    # negative_pose: optional and lazy (evaluated only when pose guidance is on)
    assert list(g["input"]["optional"]) == ["negative_pose"] and g["input"]["optional"]["negative_pose"][1]["lazy"] is True
    prep = nodes.NODE_CLASS_MAPPINGS["SteadyDancerPosePrep"].GET_NODE_INFO_V1()
    assert prep["output"] == ["IMAGE", "IMAGE", "SD_POSES"]
    assert prep["input"]["optional"]["negatives"][1]["default"] is True  # older workflows keep their negatives
    loader = nodes.NODE_CLASS_MAPPINGS["SteadyDancerPoseModelLoader"].GET_NODE_INFO_V1()
    assert "yolox_l.onnx" in loader["input"]["required"]["detector"][1]["options"]
    assert "dw-ll_ucoco_384.onnx" in loader["input"]["required"]["pose_model"][1]["options"]
