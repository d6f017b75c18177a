#!/usr/bin/env python3
"""Video I/O of a dance job on the CPU (issue #13): the mp4 save and the driving video's load.

    python bench/video_io.py --comfyui DIR [--frames 81] [--width 480] [--height 832] [--repeat 3]
                             [--threads N] [--content random,smooth] [--configs medium:23,veryfast:21,...]
                             [--load-frames 88] [--load-size 576] [--json OUT]

Save: ComfyUI core's own ``VideoFromComponents.save_to`` (what CreateVideo + SaveVideo run), split
into its parts by an instrumented copy of its loop (per-frame tensor → uint8, swscale rgb24 → yuv420p,
x264 encode, mux), against the pack's ``video_io.write_mp4`` at each preset:crf of --configs
(its conversion alone, then the whole write). Quality: every output decoded again (PyAV, rgb24) and
compared with the float source frames × 255: PSNR over RGB, SSIM on luma (BT.601 Y, 11×11 Gaussian
σ 1.5), file size. Content: ``random`` (uniform noise: the worst case for x264, and what the device
bench's random-weight model decoded to) and ``smooth`` (a realistic stand-in: a 1/f² colour-noise
background, the spectrum of natural images, panning; a textured figure moving; grain σ 1.2/255).
Load: core's ``VideoFromFile.get_components`` (LoadVideo + GetVideoComponents) split into the h264
decode (PyAV's SLICE threads, as core, against AUTO: frame threads), the rgb24 conversion and the
float32 conversion + stack, on a clip written by core (2 slices a frame) and one written with one slice a
frame (as most uploads).
Times: the best of --repeat runs (wall), and the process CPU time of that run. --threads N sets
torch's and OpenCV's threads and x264's (default: all cores; the number is in the report).
"""

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "comfyui-steadydancer"))
import video_io  # noqa: E402  (the pack module; imports no ComfyUI)

# ---------------------------------------------------------------- content


def pink(h, w, g, beta):
    fy, fx = torch.fft.fftfreq(h)[:, None], torch.fft.rfftfreq(w)[None, :]
    f = torch.sqrt(fx**2 + fy**2)
    f[0, 0] = 1
    amp = f ** (-beta / 2)
    amp[0, 0] = 0
    ph = torch.rand(h, w // 2 + 1, generator=g) * 2 * math.pi
    x = torch.fft.irfft2(amp * torch.polar(torch.ones_like(ph), ph), s=(h, w))
    return (x - x.mean()) / x.std()


def smooth_clip(n, h, w, seed=0):
    """A realistic stand-in for a generated dance video (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    bh, bw = h + 200, w + 200
    bg = torch.stack([pink(bh, bw, g, 2.2) for _ in range(3)], -1)
    mix = torch.tensor([[0.8, 0.15, 0.05], [0.15, 0.75, 0.1], [0.05, 0.2, 0.75]])
    bg = 0.5 + 0.12 * (bg @ mix.T) + torch.linspace(-0.1, 0.1, bh)[:, None, None]
    tex = pink(h, w, g, 1.6)[..., None]
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    out = torch.empty(n, h, w, 3)
    for t in range(n):
        ph = t / 32
        ox, oy = int(100 + 60 * math.sin(math.pi * ph)), int(100 + 20 * math.sin(0.6 * math.pi * ph))
        fr = bg[oy : oy + h, ox : ox + w].clone()
        cx, bob = w / 2 + 0.08 * w * math.sin(2 * math.pi * ph), 0.01 * h * math.sin(4 * math.pi * ph)
        parts = [(cx, 0.18 * h + bob, 0.1 * w, 0.045 * h, (0.92, 0.74, 0.6), 0.05), (cx, 0.42 * h + bob, 0.18 * w, 0.17 * h, (0.75, 0.22, 0.25), 0.25)]
        for s, p0 in ((-1, 0), (1, math.pi)):
            sw = math.sin(2 * math.pi * ph * 1.3 + p0)
            parts.append((cx + s * (0.2 * w + 0.05 * w * sw), 0.38 * h + bob - 0.06 * h * sw, 0.06 * w, 0.12 * h, (0.92, 0.74, 0.6), 0.05))
            parts.append((cx + s * (0.08 * w + 0.04 * w * sw), 0.75 * h, 0.09 * w, 0.17 * h, (0.16, 0.2, 0.45), 0.3))
        for x0, y0, rx, ry, col, ta in parts:
            m = ((1 - ((xx - x0) / rx) ** 2 - ((yy - y0) / ry) ** 2) * 8).clamp(0, 1)[..., None]
            fr = fr * (1 - m) + torch.tensor(col) * (1 + ta * tex) * m
        fr += torch.randn(fr.shape, generator=g) * (1.2 / 255)
        out[t] = fr.clamp(0, 1)
    return out


def make_content(kind, n, h, w):
    if kind == "random":
        return torch.rand(n, h, w, 3, generator=torch.Generator().manual_seed(0))
    if kind == "smooth":
        return smooth_clip(n, h, w)
    raise SystemExit(f"--content: unknown kind {kind!r} (random, smooth)")


# ---------------------------------------------------------------- quality


def decode(path):
    with av.open(str(path)) as c:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]))


def ssim_luma(a, b):
    wts = torch.tensor([0.299, 0.587, 0.114])
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    k = (g / g.sum())[:, None] * (g / g.sum())[None, :]
    k = k[None, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(0, a.shape[0], 8):
        x, y = (a[i : i + 8].float() @ wts)[:, None], (b[i : i + 8].float() @ wts)[:, None]
        mx, my = F.conv2d(x, k), F.conv2d(y, k)
        sxx, syy, sxy = F.conv2d(x * x, k) - mx * mx, F.conv2d(y * y, k) - my * my, F.conv2d(x * y, k) - mx * my
        vals.append((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))).flatten(1).mean(1))
    return torch.cat(vals).mean().item()


def quality(src, path):
    d = decode(path)
    if d.shape != (src.shape[0], src.shape[1], src.shape[2], 3):
        raise SystemExit(f"{path}: decoded {tuple(d.shape)}, expected {tuple(src.shape)}")
    ref = src * 255
    mse = sum(((d[i : i + 8].float() - ref[i : i + 8]) ** 2).sum().item() for i in range(0, len(d), 8)) / ref.numel()
    return {"psnr_db": round(10 * math.log10(255**2 / mse), 2), "ssim_y": round(ssim_luma(d, ref), 4), "kib": os.path.getsize(path) // 1024}


def x264_settings(path):
    """The options x264 wrote into the stream's SEI (what it really ran with)."""
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            b = bytes(p)
            i = b.find(b"options: ")
            if i >= 0:
                opts = dict(kv.split("=", 1) for kv in b[i + 9 : b.find(b"\x00", i)].decode().split() if "=" in kv)
                return {k: opts.get(k) for k in ("threads", "sliced_threads", "lookahead_threads", "subme", "ref", "me", "bframes", "crf")}
    return {}


# ---------------------------------------------------------------- timing


def best(fn, repeat):
    runs = []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = min(runs)
    return round(wall, 3), round(cpu, 3)


def core_split(images, path, fps):
    """ComfyUI core's VideoFromComponents.save_to loop (a125cd84), timed per part."""
    t = {"tensor_to_uint8": 0.0, "swscale_yuv420p": 0.0, "encode": 0.0, "mux": 0.0}
    with av.open(str(path), mode="w", options={"movflags": "use_metadata_tags"}) as output:
        vs = output.add_stream("h264", rate=Fraction(round(fps * 1000), 1000))
        vs.width, vs.height, vs.pix_fmt = images.shape[2], images.shape[1], "yuv420p"
        for frame in images:
            a = time.perf_counter()
            img = (frame * 255).clamp(0, 255).byte().cpu().numpy()
            b = time.perf_counter()
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            c = time.perf_counter()
            packet = vs.encode(f)
            d = time.perf_counter()
            output.mux(packet)
            t["tensor_to_uint8"] += b - a
            t["swscale_yuv420p"] += c - b
            t["encode"] += d - c
            t["mux"] += time.perf_counter() - d
        a = time.perf_counter()
        packet = vs.encode(None)
        b = time.perf_counter()
        output.mux(packet)
        t["encode"] += b - a
        t["mux"] += time.perf_counter() - b
    return {k: round(v, 3) for k, v in t.items()}


def bench_save(args, kind, tmp, core_cls):
    n, h, w = args.frames, args.height, args.width
    src = make_content(kind, n, h, w)
    fps = 16.0
    res = {"content": kind, "shape": [n, h, w], "runs": []}
    core_path = tmp / f"core-{kind}.mp4"
    from comfy_api.latest._util import VideoComponents

    video = core_cls(VideoComponents(images=src, audio=None, frame_rate=Fraction(fps)))
    wall, cpu = best(lambda: video.save_to(str(core_path)), args.repeat)
    split = core_split(src, tmp / "core-split.mp4", fps)
    res["core"] = {"wall_s": wall, "cpu_s": cpu, "split_s": split, "x264": x264_settings(core_path), **quality(src, core_path)}
    print(f"[{kind}] core medium/23 (PyAV defaults): {res['core']}", flush=True)
    conv_wall, conv_cpu = best(lambda: sum(1 for _ in video_io._yuv_frames(src, video_io.CHUNK)), args.repeat)
    res["ours_conversion_s"] = {"wall_s": conv_wall, "cpu_s": conv_cpu}
    print(f"[{kind}] ours, conversion alone (uint8 + I420): {res['ours_conversion_s']}", flush=True)
    for spec in args.configs.split(","):
        preset, crf = spec.split(":")
        p = tmp / f"ours-{kind}-{preset}-{crf}.mp4"
        wall, cpu = best(lambda: video_io.write_mp4(p, src, fps, preset=preset, crf=float(crf), threads=args.threads), args.repeat)
        r = {"preset": preset, "crf": float(crf), "wall_s": wall, "cpu_s": cpu, "x264": x264_settings(p), **quality(src, p)}
        res["runs"].append(r)
        print(f"[{kind}] ours {preset}/{crf}: {r}", flush=True)
    return res


def bench_load(args, tmp, core_file_cls):
    """Where core's LoadVideo + GetVideoComponents time goes, and what a threaded decoder would save."""
    n, side = args.load_frames, args.load_size
    src = smooth_clip(n, side, side, seed=1)
    from comfy_api.latest._input_impl.video_types import VideoFromComponents
    from comfy_api.latest._util import VideoComponents

    out = {"clip": [n, side, side]}
    clips = {"core_written_sliced": tmp / "drive-core.mp4", "one_slice_per_frame": tmp / "drive-1slice.mp4"}
    VideoFromComponents(VideoComponents(images=src, audio=None, frame_rate=Fraction(16))).save_to(str(clips["core_written_sliced"]))
    video_io.write_mp4(clips["one_slice_per_frame"], src, 16)  # as most uploaded clips: one slice a frame

    def decode(path, thread_type, rgb):
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            s.thread_type = thread_type
            for f in c.decode(s):
                if rgb:
                    f.to_ndarray(format="rgb24")

    for name, path in clips.items():
        r = {"x264": x264_settings(path)}
        r["core_get_components_s"] = best(lambda: core_file_cls(str(path)).get_components(), args.repeat)[0]
        for tt in ("SLICE", "AUTO"):  # SLICE: PyAV's default, what core runs; AUTO: frame + slice threads
            r[f"decode_{tt}_s"] = best(lambda: decode(path, tt, False), args.repeat)[0]
            r[f"decode_rgb24_{tt}_s"] = best(lambda: decode(path, tt, True), args.repeat)[0]
        r["float32_and_stack_s"] = round(r["core_get_components_s"] - r["decode_rgb24_SLICE_s"], 3)
        out[name] = r
        print(f"[load] {name}: {r}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--comfyui", required=True, help="ComfyUI core checkout (the pinned a125cd84)")
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=832)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch/OpenCV/x264 threads (0: all cores)")
    ap.add_argument("--content", default="random,smooth")
    ap.add_argument("--configs", default="medium:23,fast:23,faster:22,veryfast:21,superfast:21,ultrafast:21")
    ap.add_argument("--load-frames", type=int, default=88)
    ap.add_argument("--load-size", type=int, default=576)
    ap.add_argument("--no-load", action="store_true")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    sys.path.insert(0, args.comfyui)
    from comfy_api.latest._input_impl.video_types import VideoFromComponents, VideoFromFile

    machine = {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cv2_threads": cv2.getNumThreads(),
        "cpu": platform.processor() or platform.machine(),
        "av": av.__version__,
        "torch": torch.__version__,
        "load_avg": os.getloadavg(),
    }
    print(f"machine: {machine}", flush=True)
    results = {"machine": machine, "save": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind in args.content.split(","):
            results["save"].append(bench_save(args, kind, tmp, VideoFromComponents))
        if not args.no_load:
            results["load"] = bench_load(args, tmp, VideoFromFile)
    results["machine"]["load_avg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
