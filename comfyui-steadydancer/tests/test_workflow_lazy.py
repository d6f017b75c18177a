"""The shipped dance workflow (docker/workflows/steadydancer-dance.api.json) through ComfyUI's own
executor (``execution.validate_prompt`` + ``execution.PromptExecutor`` at the pinned commit): with
pose CFG off (the fast preset) ComfyUI does not run the negative-pose nodes, because the guider's
``negative_pose`` input is lazy; with pose CFG on (the quality preset) it does; either way the
final latent is bit for bit the one of the older wiring, where SteadyDancerPosePrep rendered the
negative poses and SteadyDancerConditioning encoded them.

Every SteadyDancer node, the pose nodes (DWPose on the tiny random ONNX models of
onnx_fixtures.py), ImageFromBatch, ModelSamplingSD3, the context windows and the custom-sampler
nodes are the real ones. Stubs stand in only where files or big models would be loaded: the
reference image and driving frames (random), the SteadyDancer model (the tiny random checkpoint
of test_guidance_steadydancer), the text encode (random conditioning), CLIP vision (features from
the image), the VAE (a counting stand-in), and the decode/save tail (a sink that keeps the latent).
The LoRA node is spliced out as the quality preset does (no LoRA file here)."""

import asyncio
import json

import pytest
import torch

from pack_loader import PACK_DIR
from test_guidance_steadydancer import PoolVAE, tiny_checkpoint

pytest.importorskip("onnx", reason="the onnx package builds the tiny pose models (requirements-dev.txt)")
pytest.importorskip("rtmlib", reason="rtmlib runs DWPose (requirements-nodeps.txt, installed with --no-deps)")
import onnx_fixtures  # noqa: E402

WORKFLOW = PACK_DIR.parent / "docker" / "workflows" / "steadydancer-dance.api.json"
W, H, LENGTH = 32, 32, 9  # 3 latent frames
WINDOW, OVERLAP = 5, 4  # 2 latent frames, 1 shared: the context windows really split the video
NEGATIVE_PATH = ("Negative poses", "Negative pose render", "Negative pose conditioning")
FAST = dict(cfg=1.0, pose_cfg=0.0, pose_start=0.1, pose_end=0.4, steps=4, sampler="euler", scheduler="simple")
# 6 steps: pose guidance at steps 1 and 2 (1/6, 2/6 inside 0.1..0.4)
QUALITY = dict(cfg=5.0, pose_cfg=1.5, pose_start=0.1, pose_end=0.4, steps=6, sampler="flow_unipc_bh2", scheduler="flow_unipc_official")
PRESETS = {"fast": FAST, "quality": QUALITY}

RESULTS = {}  # sink tag -> final latent


class CountingVAE(PoolVAE):
    def __init__(self):
        self.encoded = []  # frames per encode call

    def encode(self, img):
        self.encoded.append(int(img.shape[0]))
        return super().encode(img)


def _images(n, seed):
    return torch.rand(n, 40, 48, 3, generator=torch.Generator().manual_seed(seed))


def _stub(name, outputs, make, inputs=None, output_node=False):
    """A v1 node class ``name`` whose FUNCTION returns make(**inputs)."""
    return type(
        name,
        (),
        {
            "INPUT_TYPES": classmethod(lambda cls: {"required": inputs or {}}),
            "RETURN_TYPES": outputs,
            "FUNCTION": "run",
            "CATEGORY": "testing",
            "OUTPUT_NODE": output_node,
            "run": lambda self, **kw: make(**kw),
        },
    )


@pytest.fixture(scope="module")
def core(comfy, tmp_path_factory):
    """nodes.NODE_CLASS_MAPPINGS with the core extras the workflow uses, our pack and the stubs
    (restored afterwards); the tiny pose models in a detection folder."""
    pack = comfy
    import comfy.clip_vision as clip_vision_mod
    import folder_paths
    import nodes
    from comfy_extras import nodes_custom_sampler, nodes_images, nodes_model_advanced

    det = tmp_path_factory.mktemp("detection")
    onnx_fixtures.build_yolox(det / "yolox_l.onnx", person_bias=8.0)
    onnx_fixtures.build_dwpose(det / "dw-ll_ucoco_384.onnx")
    folder_paths.add_model_folder_path("detection", str(det))

    def clip_vision(image):
        out = clip_vision_mod.Output()
        g = torch.Generator().manual_seed(int(image.sum() * 1000) % (2**31))
        out.penultimate_hidden_states = torch.randn(1, 257, 1280, generator=g)
        return (out,)

    loading = __import__("comfyui_steadydancer.steadydancer.loading", fromlist=["x"])
    model_mod = __import__("comfyui_steadydancer.steadydancer.model", fromlist=["x"])
    patcher = loading.load_state_dict_model(tiny_checkpoint(model_mod), num_heads=1)
    text = lambda s: [[torch.randn(1, 6, 64, generator=torch.Generator().manual_seed(s)), {}]]  # noqa: E731
    state = {"vae": None}

    def vae():
        state["vae"] = CountingVAE()
        return (state["vae"],)

    def sink(samples, tag):
        RESULTS[tag] = samples["samples"].clone()
        return ()

    stubs = {
        "TestReferenceImage": _stub("TestReferenceImage", ("IMAGE",), lambda: (_images(1, 1),)),
        "TestDrivingFrames": _stub("TestDrivingFrames", ("IMAGE",), lambda: (_images(LENGTH + 1, 2),)),
        "TestModel": _stub("TestModel", ("MODEL",), lambda: (patcher,)),
        "TestText": _stub("TestText", ("CONDITIONING", "CONDITIONING"), lambda: (text(1), text(2))),
        "TestClipVision": _stub("TestClipVision", ("CLIP_VISION_OUTPUT",), clip_vision, {"image": ("IMAGE",)}),
        "TestVAE": _stub("TestVAE", ("VAE",), vae),
        "TestLatentSink": _stub("TestLatentSink", (), sink, {"samples": ("LATENT",), "tag": ("STRING", {"default": ""})}, output_node=True),
    }
    mine = dict(nodes_custom_sampler.NODE_CLASS_MAPPINGS)
    mine["ModelSamplingSD3"] = nodes_model_advanced.NODE_CLASS_MAPPINGS["ModelSamplingSD3"]
    mine["ImageFromBatch"] = nodes_images.NODE_CLASS_MAPPINGS["ImageFromBatch"]
    mine.update({cls.GET_SCHEMA().node_id: cls for cls in pack.NODES})
    mine.update(stubs)
    saved = {k: nodes.NODE_CLASS_MAPPINGS.get(k) for k in mine}
    nodes.NODE_CLASS_MAPPINGS.update(mine)
    yield state
    for k, v in saved.items():
        if v is None:
            nodes.NODE_CLASS_MAPPINGS.pop(k, None)
        else:
            nodes.NODE_CLASS_MAPPINGS[k] = v


def by_title(wf, title):
    (hit,) = [k for k, n in wf.items() if n.get("_meta", {}).get("title") == title]
    return hit


def prompt(preset, tag, wiring="lazy"):
    """The shipped API workflow at the test size with the stubs in; ``wiring="old"`` rewires it the
    way the workflow was before the negative poses had their own nodes."""
    wf = json.loads(WORKFLOW.read_text())
    t = lambda title: by_title(wf, title)  # noqa: E731
    for title, cls in (("Reference image", "TestReferenceImage"), ("Driving frames", "TestDrivingFrames"), ("SteadyDancer model", "TestModel"), ("Text encode", "TestText"), ("VAE", "TestVAE")):
        wf[t(title)] = {"class_type": cls, "inputs": {}, "_meta": {"title": title}}
    for title in ("CLIP vision: reference", "CLIP vision: first pose"):
        wf[t(title)] = {"class_type": "TestClipVision", "inputs": {"image": wf[t(title)]["inputs"]["image"]}, "_meta": {"title": title}}
    lora = t("Fast LoRA")
    wf[t("Model sampling")]["inputs"]["model"] = wf[lora]["inputs"]["model"]
    for title in ("Driving video", "CLIP vision", "Fast LoRA", "Decode", "Create video", "Save video"):
        del wf[t(title)]
    wf["900"] = {"class_type": "TestLatentSink", "inputs": {"samples": [t("Sample"), 0], "tag": tag}, "_meta": {"title": "Sink"}}
    size = dict(width=W, height=H)
    wf[t("Pose prep")]["inputs"].update(size, frame_count=LENGTH, seed=3)
    wf[t("Pose model")]["inputs"]["device"] = "cpu"
    wf[t("SteadyDancer conditioning")]["inputs"].update(size, length=LENGTH)
    wf[t("Context windows")]["inputs"].update(window_length=WINDOW, overlap=OVERLAP)
    wf[t("Guider")]["inputs"].update({k: preset[k] for k in ("cfg", "pose_cfg", "pose_start", "pose_end")})
    wf[t("Sampler")]["inputs"]["sampler_name"] = preset["sampler"]
    wf[t("Scheduler")]["inputs"].update(steps=preset["steps"], scheduler=preset["scheduler"])
    if "Negative poses" in [n["_meta"]["title"] for n in wf.values()]:
        wf[t("Negative poses")]["inputs"]["seed"] = 3
        wf[t("Negative pose render")]["inputs"].update(size)
        wf[t("Negative pose conditioning")]["inputs"].update(size, length=LENGTH)
    if wiring == "old":
        prep, cond = t("Pose prep"), t("SteadyDancer conditioning")
        wf[prep]["inputs"].pop("negatives", None)
        wf[cond]["inputs"]["negative_pose_frames"] = [prep, 1]
        wf[t("Guider")]["inputs"]["negative_pose"] = [cond, 2]
        for title in NEGATIVE_PATH:
            wf.pop(t(title), None)
    return wf


class Server:
    """What PromptExecutor needs of ComfyUI's PromptServer: it records the messages."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.sockets_metadata = {}
        self.messages = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))


class Run:
    def __init__(self, titles, encoded, renders, executor, messages, latent):
        self.titles, self.encoded, self.renders, self.executor, self.messages, self.latent = titles, encoded, renders, executor, messages, latent


def execute(core, wf) -> Run:
    """validate_prompt + PromptExecutor on ``wf``: the titles of the nodes ComfyUI executed, the
    frames of every VAE encode and of every pose render, the executor, its messages, the latent."""
    import execution

    pose_mod = __import__("comfyui_steadydancer.nodes_pose", fromlist=["x"])
    real_render = __import__("comfyui_steadydancer.pose_render", fromlist=["x"]).render
    renders = []
    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt("p", wf, None))
    assert valid, (error, node_errors)
    server = Server()
    ex = execution.PromptExecutor(server)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pose_mod, "render", lambda seq, *a, **k: renders.append(len(seq)) or real_render(seq, *a, **k))
        ex.execute(wf, "p", {"client_id": "test"}, outputs)
    ran = [d["node"] for e, d in server.messages if e == "executing" and d.get("node") is not None]
    titles = [wf[n]["_meta"]["title"] for n in ran]
    tag = wf["900"]["inputs"]["tag"]
    return Run(titles, list(core["vae"].encoded), renders, ex, server.messages, RESULTS.get(tag))


@pytest.fixture(scope="module")
def runs(core):
    """Each (preset, wiring) graph executed once (a fresh executor: nothing cached), on demand."""
    done = {}

    def get(preset, wiring="lazy"):
        if (preset, wiring) not in done:
            done[preset, wiring] = execute(core, prompt(PRESETS[preset], f"{preset}-{wiring}", wiring))
        return done[preset, wiring]

    return get


def test_fast_preset_skips_the_negative_pose_nodes(runs):
    r = runs("fast")
    assert r.executor.success
    assert {"Sample", "Pose prep", "SteadyDancer conditioning", "Guider"} <= set(r.titles)
    assert not set(NEGATIVE_PATH) & set(r.titles), r.titles
    # encodes: concat (LENGTH), reference (1), first pose (1), poses (LENGTH); one render (positive poses)
    assert sorted(r.encoded) == sorted([LENGTH, 1, 1, LENGTH])
    assert r.renders == [LENGTH]


def test_quality_preset_runs_the_negative_pose_nodes(runs):
    r = runs("quality")
    assert r.executor.success
    assert set(NEGATIVE_PATH) <= set(r.titles), r.titles
    assert r.titles.index("Negative pose conditioning") < r.titles.index("Sample")
    assert sorted(r.encoded) == sorted([LENGTH, 1, 1, LENGTH, LENGTH])
    assert r.renders == [LENGTH, LENGTH]


@pytest.mark.parametrize("preset", ["fast", "quality"])
def test_final_latent_is_the_old_wirings(runs, preset):
    """Same seeds, same inputs: the lazy wiring gives exactly the latent of the older wiring (PosePrep
    renders the negatives, SteadyDancerConditioning encodes them, always), which does all the work."""
    old, new = runs(preset, "old"), runs(preset)
    assert old.executor.success and new.executor.success
    assert old.latent.shape == (1, 16, 3, H // 8, W // 8) and torch.isfinite(old.latent).all()
    assert torch.equal(old.latent, new.latent)
    assert sum(old.encoded) == 3 * LENGTH + 2 and len(old.renders) == 2
    if preset == "fast":
        assert sum(new.encoded) == 2 * LENGTH + 2 and len(new.renders) == 1
    else:
        assert sorted(new.encoded) == sorted(old.encoded) and len(new.renders) == 2


def test_pose_cfg_without_negative_pose_is_a_clear_error(core):
    wf = prompt(dict(FAST, pose_cfg=1.5), "no-negative")
    guider = wf[by_title(wf, "Guider")]["inputs"]
    del guider["negative_pose"]
    r = execute(core, wf)
    assert not r.executor.success and "Sample" not in r.titles
    (err,) = [d for e, d in r.messages if e == "execution_error"]
    assert err["node_type"] == "SteadyDancerGuider"
    assert "pose_cfg is 1.5" in err["exception_message"] and "Negative Pose Conditioning" in err["exception_message"]
    # the same graph with pose CFG off runs: negative_pose is optional
    guider["pose_cfg"] = 0.0
    assert execute(core, wf).executor.success
