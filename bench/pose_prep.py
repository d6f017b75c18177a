#!/usr/bin/env python3
"""SteadyDancerPosePrep's work on CPU, split by stage (issue #13), at the warm standard job's shape.

    python3 bench/pose_prep.py [--pack DIR] [--comfyui DIR] [--frames 81] [--clip 88] [--size 576]
                               [--width 480] [--height 832] [--repeat 3] [--json OUT] [--profile N]

Runs the node's own ``nodes_pose.prepare_poses`` (ComfyUI core from --comfyui, default the source
cache's pinned copy, on sys.path for ``folder_paths``) on a 576 px square reference image and an
88-frame 576 px square driving clip drawn by scripts/make_samples.py's ``figure`` (the GPU job's
sample inputs, as RGB frames: no video decoding), keeping 81 frames, output 480x832: detection on
the reference and the 81 frames, alignment, negative poses, rendering of both pose videos.

The pose models are the tiny random stand-ins with the real input/output signatures
(tests/onnx_fixtures.py, fixed batch 1 as the fixtures are), so the two "net" stages are NOT
YOLOX-L's or DWPose-L's time; everything around the networks is the real work.

Reported: the median over --repeat runs (after one warm-up run) of the whole call and of
detection, alignment, augmentation and rendering as the node runs them (threads included): wall
seconds and the process's CPU seconds (all threads; unlike wall time, not inflated when the host's
other load takes the cores); then one serial detection pass (one worker thread, no overlap) split
into stages by CPU seconds, to show where the work is. A pack without ``DWPoseEstimator.timings`` (--pack pointing at an older copy, whose detection
is serial anyway) is split by wrapping rtmlib's preprocess / session.run / postprocess and
pose_extract's functions. ``sha256`` of both output videos shows whether two packs agree bit for bit.
--profile N: cProfile's top N functions (cumulative) of one more run.
"""

import argparse
import cProfile
import hashlib
import importlib
import importlib.util
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
import types
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COMFYUI_COMMIT = "a125cd84b054a57729b5eecab930ca9408719832"
STAGES = ("convert", "resize", "det_pre", "det_net", "det_post", "pose_pre", "pose_net", "pose_post", "to_pose")


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def mount_pack(pack: Path, comfyui: Path) -> dict:
    sys.path.insert(0, str(comfyui))
    pkg = types.ModuleType("sdpack")
    pkg.__path__ = [str(pack)]
    sys.modules["sdpack"] = pkg
    return {n: importlib.import_module(f"sdpack.{n}") for n in ("pose_extract", "pose_align", "pose_render", "nodes_pose")}


class Timer:
    """Seconds per stage of wrapped callables: wall (``t``) and the process's CPU time (``cpu``,
    all threads: what the host's other load does not inflate)."""

    def __init__(self):
        self.t = defaultdict(float)
        self.cpu = defaultdict(float)

    def wrap(self, owner, attr, stage):
        fn = getattr(owner, attr)

        def timed(*a, **k):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.t[stage] += time.perf_counter() - t0
                self.cpu[stage] += time.process_time() - c0

        setattr(owner, attr, timed)


def legacy_stages(est, pe) -> Timer:
    """Stage timers for a pack whose estimator does not time itself (rtmlib frame by frame)."""
    timer = Timer()
    timer.wrap(pe, "resize_for_detection", "resize")
    timer.wrap(pe, "keypoints_to_pose", "to_pose")
    for tool, pre in ((est.detector, "det"), (est.pose, "pose")):
        timer.wrap(tool.session, "run", f"{pre}_net")
        timer.wrap(tool, "preprocess", f"{pre}_pre")
        timer.wrap(tool, "inference", f"{pre}_inference")  # NCHW float32 copy + session.run
        timer.wrap(tool, "postprocess", f"{pre}_post")
    return timer


def sample_frames(n: int, size: int):
    ms = load_module("sd_make_samples", ROOT / "scripts" / "make_samples.py")
    ref = np.asarray(ms.figure(size, 0.0, background=(225, 225, 215), shirt=(40, 120, 70)))
    clip = np.stack([np.asarray(ms.figure(size, i / n * 2)) for i in range(n)])  # as make_samples
    return ref, clip


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", default=str(ROOT / "comfyui-steadydancer"))
    ap.add_argument("--comfyui", default=None, help=f"ComfyUI core (default: the source cache's ComfyUI@{COMFYUI_COMMIT[:12]})")
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--clip", type=int, default=88)
    ap.add_argument("--size", type=int, default=576)
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=832)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None, help="append the result as one JSON line to this file")
    ap.add_argument("--profile", type=int, default=0)
    a = ap.parse_args()

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "steadydancer" / "sources"
    comfyui = Path(a.comfyui) if a.comfyui else cache / f"ComfyUI@{COMFYUI_COMMIT}"
    if not (comfyui / "folder_paths.py").is_file():
        raise SystemExit(f"ComfyUI core not found at {comfyui} (--comfyui DIR, or seed the source cache: steadydancer sources fetch)")
    import cv2
    import torch

    m = mount_pack(Path(a.pack).resolve(), comfyui)
    pe, nodes = m["pose_extract"], m["nodes_pose"]
    fx = load_module("sd_onnx_fixtures", ROOT / "comfyui-steadydancer" / "tests" / "onnx_fixtures.py")
    tmp = Path(tempfile.mkdtemp(prefix="pose-bench-"))
    fx.build_yolox(tmp / "yolox_l.onnx", person_bias=8.0)
    fx.build_dwpose(tmp / "dw-ll_ucoco_384.onnx")
    est = pe.DWPoseEstimator(tmp / "yolox_l.onnx", tmp / "dw-ll_ucoco_384.onnx", device="cpu")
    own = hasattr(est, "timings")
    outer = Timer()
    outer.wrap(est, "detect_frames", "detect")
    for f in ("align_sequence", "augment_sequence", "render"):
        outer.wrap(nodes, f, f.split("_")[0])

    ref_u8, clip_u8 = sample_frames(a.clip, a.size)
    ref = torch.from_numpy(ref_u8[None].astype(np.float32) / 255.0)
    clip = torch.from_numpy(clip_u8.astype(np.float32) / 255.0)

    def run():
        outer.t.clear()
        outer.cpu.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        out = nodes.prepare_poses(est, ref, clip, a.width, a.height, a.frames, True, 1)
        return (time.perf_counter() - t0, time.process_time() - c0), (dict(outer.t), dict(outer.cpu)), out

    t0 = time.perf_counter()
    run()
    warm = time.perf_counter() - t0
    runs = [run() for _ in range(a.repeat)]
    med = lambda key, i=0: statistics.median(r[1][i][key] for r in runs)  # noqa: E731
    pos, neg, _ = runs[-1][2]

    # one serial detection pass over reference + frames, split into stages (process CPU seconds)
    frames_np = [ref.numpy(), clip[: a.frames].numpy()]
    t0, c0 = time.perf_counter(), time.process_time()
    if own:
        est.workers, est.overlap, est.clock = 1, False, time.process_time
        stages = defaultdict(float)
        for fr in frames_np:
            est.detect_frames(fr)
            for k in STAGES:
                stages[k] += est.timings[k]
    else:
        timer = legacy_stages(est, pe)
        for fr in frames_np:
            est.detect_frames(fr)
        stages = dict(timer.cpu)
        for pre in ("det", "pose"):
            stages[f"{pre}_pre"] += stages.pop(f"{pre}_inference") - stages[f"{pre}_net"]
    serial_wall, serial = time.perf_counter() - t0, time.process_time() - c0
    stages["other"] = serial - sum(stages.values())  # the older pack: conversion + per-frame Python

    sha = lambda t: hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]  # noqa: E731
    result = {
        "what": "bench/pose_prep.py: nodes_pose.prepare_poses on CPU, tiny stand-in ONNX models",
        "pack": str(Path(a.pack).resolve()),
        "host": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, onnxruntime {importlib.import_module('onnxruntime').__version__}, cv2 {cv2.__version__}, numpy {np.__version__}",
        "shape": f"reference {a.size}x{a.size}, clip {a.clip} frames {a.size}x{a.size} -> {a.frames} frames {a.width}x{a.height}",
        "warmup_s": round(warm, 2),
        "wall_s": {"total": round(statistics.median(r[0][0] for r in runs), 2), **{k: round(med(k), 3) for k in ("detect", "align", "augment", "render")}},
        "cpu_s": {"total": round(statistics.median(r[0][1] for r in runs), 2), **{k: round(med(k, 1), 3) for k in ("detect", "align", "augment", "render")}},
        "detect_serial": {"wall_s": round(serial_wall, 2), "cpu_s": round(serial, 2), "stages_cpu_s": {k: round(v, 3) for k, v in stages.items()}},
        "sha256": {"positive": sha(pos), "negative": sha(neg)},
        "runs": a.repeat,
    }
    print(json.dumps(result, indent=1))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(result) + "\n")
    if a.profile:
        pr = cProfile.Profile()
        pr.enable()
        run()
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(a.profile)
        print(s.getvalue())


if __name__ == "__main__":
    main()
