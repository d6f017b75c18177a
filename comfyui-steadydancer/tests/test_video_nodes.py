"""SteadyDancerSaveVideo against ComfyUI core's SaveVideo (in-process, pinned source): it writes
what core writes (an h264 yuv420p mp4 with every frame, the size, the rate, the metadata, the
audio) and answers with the same UI output; bad inputs fail with errors that say what to do. Media are checked by
decoding them again with PyAV (the decoder family of LoadVideo and of the toolkit's media checks)."""

import asyncio
import json
import math
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from pack_loader import pack_module

W, H, N, FPS = 64, 48, 9, 8


def frames(n=N, h=H, w=W):
    """Smooth, moving content (a gradient and a square), floats in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    out = torch.empty(n, h, w, 3)
    for t in range(n):
        img = torch.stack([xx, yy, 0.5 + 0.3 * torch.sin(6 * xx + t / 3)], -1) * 0.8 + 0.1
        x0 = 4 + 3 * t
        img[10:26, x0 : x0 + 16] = torch.tensor([0.9, 0.2, 0.2])
        out[t] = img
    return out


def psnr(decoded, src):
    mse = ((decoded.float() - src * 255) ** 2).mean().item()
    return 10 * math.log10(255**2 / mse)


def probe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        imgs = torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in c.decode(v)]))
        return dict(
            codec=v.codec_context.name,
            profile=v.codec_context.profile,
            pix_fmt=v.codec_context.pix_fmt,
            size=(v.width, v.height),
            rate=v.average_rate,
            format=c.format.name,
            metadata=dict(c.metadata),
            audio=[(a.codec_context.name, a.sample_rate, a.channels) for a in c.streams.audio],
            frames=imgs,
        )


@pytest.fixture(scope="module")
def env(comfy, tmp_path_factory):
    import folder_paths
    from comfy_api.latest._input_impl.video_types import VideoFromComponents
    from comfy_api.latest._util import VideoComponents
    from comfy_extras import nodes_video as core

    out = tmp_path_factory.mktemp("output")
    folder_paths.set_output_directory(str(out))
    return dict(
        out=out,
        nodes=comfy.nodes_video,
        vio=comfy.video_io,
        core=core,
        video=lambda images, fps=FPS, audio=None: VideoFromComponents(VideoComponents(images=images, audio=audio, frame_rate=Fraction(fps))),
    )


HIDDEN = {"PROMPT": {"1": {"class_type": "X", "inputs": {}}}, "EXTRA_PNGINFO": {"workflow": {"nodes": []}}}


def save(env, video, prefix="t/dance", preset="veryfast", crf=21, hidden=HIDDEN):
    node = env["nodes"].SteadyDancerSaveVideo.PREPARE_CLASS_CLONE(hidden)
    return node.execute(video, prefix, preset, crf)


def test_registered_in_the_pack(comfy):
    ids = {n.GET_SCHEMA().node_id for n in comfy.NODES}
    assert "SteadyDancerSaveVideo" in ids
    info = comfy.nodes_video.SteadyDancerSaveVideo.GET_NODE_INFO_V1()
    req = info["input"]["required"]
    assert list(req) == ["video", "filename_prefix", "preset", "crf"]
    assert req["crf"][1]["min"] == 1 and req["crf"][1]["max"] == 51 and req["crf"][1]["default"] == comfy.video_io.DEFAULT_CRF
    assert req["preset"][1]["default"] == comfy.video_io.DEFAULT_PRESET
    assert info["output_node"] is True and info["output"] == []


def test_save_writes_the_mp4_core_writes(env):
    src = frames()
    res = save(env, env["video"](src))
    ui = res.ui.as_dict()
    core = env["core"].SaveVideo.PREPARE_CLASS_CLONE(HIDDEN).execute(env["video"](src), "t/core", "mp4", "h264").ui.as_dict()
    # the same UI output as core's SaveVideo: what /history holds and src/comfy/outputs.ts reads
    assert ui.keys() == core.keys() == {"images", "animated"}
    assert ui["animated"] == core["animated"] == (True,)
    assert [dict(r) for r in ui["images"]] == [{"filename": "dance_00001_.mp4", "subfolder": "t", "type": "output"}]
    assert [set(r) for r in core["images"]] == [set(r) for r in ui["images"]]
    ours, theirs = probe(env["out"] / "t" / "dance_00001_.mp4"), probe(env["out"] / "t" / "core_00001_.mp4")
    assert ours["codec"] == "h264" and ours["pix_fmt"] == "yuv420p" and ours["profile"] == "High"
    assert ours["format"] == theirs["format"] and "mp4" in ours["format"]
    assert ours["size"] == (W, H) and ours["rate"] == FPS and ours["frames"].shape == (N, H, W, 3)
    assert json.loads(ours["metadata"]["prompt"]) == HIDDEN["PROMPT"] and json.loads(ours["metadata"]["workflow"]) == {"nodes": []}
    assert ours["metadata"]["prompt"] == theirs["metadata"]["prompt"]
    assert ours["audio"] == theirs["audio"] == []
    # faststart: the index (moov) before the frames (mdat), so a browser plays it while it loads and
    # a reader on a pipe (ffprobe -) needs no seek back; core writes moov last
    head = (env["out"] / "t" / "dance_00001_.mp4").read_bytes()
    assert head.index(b"moov") < head.index(b"mdat")
    # the picture: as close to the source as core's (colours right: planes, matrix, range)
    p_ours, p_core = psnr(ours["frames"], src), psnr(theirs["frames"], src)
    assert p_ours > 30 and p_ours > p_core - 0.5, (p_ours, p_core)
    # the next save does not overwrite: ComfyUI's counter, as core
    again = save(env, env["video"](src)).ui.as_dict()
    assert again["images"][0]["filename"] == "dance_00002_.mp4"


def test_save_fps_audio_and_no_metadata(env):
    src = frames(n=12)
    sr = 16000
    t = torch.arange(sr * 3) / sr
    wave = torch.stack([torch.sin(2 * math.pi * 440 * t), torch.sin(2 * math.pi * 660 * t)])[None] * 0.3
    audio = {"waveform": wave, "sample_rate": sr}
    res = save(env, env["video"](src, fps=23.976, audio=audio), prefix="a/clip", preset="ultrafast", crf=30, hidden={})
    p = probe(env["out"] / "a" / res.ui.as_dict()["images"][0]["filename"])
    assert p["rate"] == Fraction(23976, 1000) and p["frames"].shape[0] == 12
    assert p["audio"] == [("aac", sr, 2)]
    assert "prompt" not in p["metadata"]
    with av.open(str(env["out"] / "a" / res.ui.as_dict()["images"][0]["filename"])) as c:
        a = c.streams.audio[0]
        dur = sum(f.samples for pk in c.demux(a) for f in pk.decode()) / sr
    assert dur < 12 / 23.976 + 0.2  # trimmed to the video, as core


def test_bad_inputs_say_what_to_do(env):
    vio, src = env["vio"], frames()
    bad = lambda images=src, **kw: save(env, env["video"](images), prefix="bad/x", **kw)
    for crf, preset in ((0, "veryfast"), (52, "veryfast"), (60, "medium"), (-1, "fast"), (float("nan"), "fast")):
        with pytest.raises(vio.VideoIOError, match=r"crf .* out of range: use 1–51"):
            bad(crf=crf, preset=preset)
    with pytest.raises(vio.VideoIOError, match=r"preset 'turbo' is not an x264 preset; use one of ultrafast, .*veryslow"):
        bad(preset="turbo")
    with pytest.raises(vio.VideoIOError, match="no frames to save"):
        bad(torch.zeros(0, H, W, 3))
    with pytest.raises(vio.VideoIOError, match=r"even width and height; the frames are 63×48"):
        bad(torch.rand(3, 48, 63, 3))
    with pytest.raises(vio.VideoIOError, match=r"shape \(frames, height, width, 3\); got \(3, 48, 64, 4\)"):
        bad(torch.rand(3, 48, 64, 4))
    with pytest.raises(vio.VideoIOError, match="fps must be a positive number"):
        vio.write_mp4(env["out"] / "x.mp4", src, 0)
    # refused before any file is opened
    assert not (env["out"] / "x.mp4").exists() and not list((env["out"] / "bad").glob("*")) if (env["out"] / "bad").exists() else True


def test_api_validation_names_crf(env, monkeypatch):
    """Through ComfyUI's own prompt validation (what POST /prompt answers): crf out of range."""
    import execution

    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 3, "color": 0}},
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "3": {"class_type": "SteadyDancerSaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "v/x", "preset": "veryfast", "crf": 60}},
    }
    import nodes

    for n in (env["nodes"].SteadyDancerSaveVideo, env["core"].CreateVideo):  # undone after the test
        monkeypatch.setitem(nodes.NODE_CLASS_MAPPINGS, n.GET_SCHEMA().node_id, n)
    valid, err, _, node_errors = asyncio.run(execution.validate_prompt("p", prompt, None))
    assert not valid
    msgs = [e for e in node_errors["3"]["errors"]]
    assert any(e["type"] == "value_bigger_than_max" and e["extra_info"]["input_name"] == "crf" for e in msgs), node_errors
    prompt["3"]["inputs"]["crf"] = 21
    valid, err, outputs, _ = asyncio.run(execution.validate_prompt("p", prompt, None))
    assert valid and outputs == ["3"], err


def test_gpu_conversion_matches_cpu(env):
    """The batched torch conversion (used for frames on a GPU) gives the CPU path's planes."""
    vio = env["vio"]
    x = torch.rand(4, 32, 48, 3, generator=torch.Generator().manual_seed(1))
    cpu = np.stack(vio._to_i420(x))
    tor = vio._i420_torch(x.cuda() if torch.cuda.is_available() else x)
    assert cpu.shape == tor.shape == (4, 48, 48)
    assert np.abs(cpu.astype(int) - tor).max() <= 1 and (cpu != tor).mean() < 1e-3
    # and the long-video path: more frames than one chunk, in order
    src = frames(n=vio.CHUNK * 2 + 3)
    vio.write_mp4(env["out"] / "long.mp4", src, 16, chunk=vio.CHUNK)
    p = probe(env["out"] / "long.mp4")
    assert p["frames"].shape[0] == src.shape[0] and psnr(p["frames"], src) > 30
    # each decoded frame is closest to its own source frame (no reordering across chunks)
    d = p["frames"].float() / 255
    err = ((d[:, None] - src[None]) ** 2).mean((2, 3, 4))
    assert torch.equal(err.argmin(1), torch.arange(src.shape[0]))


def test_pack_module_imports_without_comfy():
    """video_io needs no ComfyUI (the bench imports it alone)."""
    vio = pack_module("video_io")
    assert vio.DEFAULT_PRESET in vio.PRESETS and vio.CRF_MIN <= vio.DEFAULT_CRF <= vio.CRF_MAX
