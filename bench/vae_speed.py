#!/usr/bin/env python3
"""Wan 2.1 VAE encode / decode: ComfyUI core's one-shot calls vs the pack's vae_fast (chunked, repeated tail, batch).

Full-size random Wan 2.1 VAE (the architecture of comfy.sd.VAE's Wan 2.1 branch; compute does not
depend on the values), ComfyUI a125cd84 in-process, at 480×832 by default. Per frame count, each
case runs after ``torch.cuda.empty_cache()`` + ``reset_peak_memory_stats()`` and records seconds
(CUDA synchronised; best of --repeat), torch's max allocated / reserved GiB during the case, and
whether its result is bitwise the core result it replaces (``equal``; else ``max_abs_diff``).

    python3 bench/vae_speed.py --comfyui DIR --pack comfyui-steadydancer --frames 81,481 --jsonl OUT.jsonl
    python3 bench/vae_speed.py --comfyui DIR --pack comfyui-steadydancer --tiny            # CPU smoke run

Cases (``--cases`` picks some):
  core_encode        vae.encode(video)                       (one random video: what each pose encode costs today)
  chunked_encode     vae_fast.encode(vae, video)
  core_concat        vae.encode([ref, grey × (n - 1)])        (the concat video, built in full)
  shortcut_concat    vae_fast.encode_ref_then_fill(vae, ref, n)  (fixed-point shortcut; reports chunks encoded)
  separate_2         vae_fast.encode_many(vae, [pose, neg], batch=False)
  batched_2          vae_fast.encode_many(vae, [pose, neg], batch=True)   (equal = vs separate_2)
  core_decode        vae.decode(z)                            (z: random latent of n frames)
  chunked_decode     vae_fast.decode(vae, z)
  core_conditioning  build_conditioning's five encodes with STEADYDANCER_VAE_CHUNKED=0 (today's path)
  fast_conditioning  build_conditioning with the defaults (equal = every conditioning latent bitwise)

--isolate runs every case in a child process and adds ``rss_gib`` (the child's ru_maxrss) and
``rss_growth_gib`` (how far the case raised it above the peak after setup): the memory figure that
a CPU run can give. Output: one JSON line per case (and an ``env`` line), also appended to --jsonl.
"""

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
import types
from pathlib import Path

CASES = ["core_encode", "chunked_encode", "core_concat", "shortcut_concat", "separate_2", "batched_2", "core_decode", "chunked_decode", "core_conditioning", "fast_conditioning"]


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def load_pack(pack: Path):
    pkg = types.ModuleType("sdpack")
    pkg.__path__ = [str(pack)]
    sys.modules["sdpack"] = pkg
    import importlib

    return importlib.import_module("sdpack.vae_fast"), importlib.import_module("sdpack.nodes_conditioning")


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--pack", required=True, help="the comfyui-steadydancer folder")
    ap.add_argument("--frames", default="81,481")
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=832)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (the best is reported)")
    ap.add_argument("--dtype", choices=["auto", "bf16", "fp16", "fp32"], default="auto", help="VAE dtype (auto: ComfyUI's choice for the device)")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run: 16x16 frames, 9 and 125 frames (125 reaches the fixed point)")
    ap.add_argument("--isolate", action="store_true", help="each case in a child process, with its ru_maxrss")
    ap.add_argument("--jsonl")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # "CASE:FRAMES"
    a = ap.parse_args()
    if a.tiny:
        a.width = a.height = 16  # the conditioning node needs multiples of 16
        if a.frames == ap.get_default("frames"):
            a.frames = "9,125"
    return a


def emit(a, rec):
    line = json.dumps(rec)
    print(line, flush=True)
    if a.jsonl and not a.child:
        with open(a.jsonl, "a") as f:
            f.write(line + "\n")


def run_parent_isolated(a):
    argv = [a for a in sys.argv[1:] if a != "--isolate"]
    for frames in [int(v) for v in a.frames.split(",")]:
        for case in a.cases.split(","):
            p = subprocess.run([sys.executable, __file__, *argv, "--child", f"{case}:{frames}"], capture_output=True, text=True)
            recs = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
            if p.returncode or not recs:
                emit(a, {"case": case, "frames": frames, "error": (p.stderr or p.stdout)[-2000:]})
                continue
            for r in recs:
                if "env" not in r or case == a.cases.split(",")[0]:
                    emit(a, r)


def main():
    a = parse()
    if a.isolate and not a.child:
        return run_parent_isolated(a)

    sys.path.insert(0, str(a.comfyui))
    import warnings

    warnings.filterwarnings("ignore", message="Using a non-tuple sequence")
    import torch
    import comfy.options  # noqa: F401
    from comfy.cli_args import args

    if not torch.cuda.is_available():
        args.cpu = True
    import comfy.clip_vision
    import comfy.model_management as mm
    import comfy.sd
    import importlib.util

    vf, cond = load_pack(Path(a.pack))
    spec = importlib.util.spec_from_file_location("sd_make_tiny", Path(a.pack) / "tests" / "fixtures" / "make_tiny_models.py")
    tiny_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny_models)

    device = mm.get_torch_device()
    cuda = device.type == "cuda"
    dtype = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    t0 = time.perf_counter()
    vae = comfy.sd.VAE(sd=tiny_models.wan_vae(Path(a.comfyui), torch.Generator().manual_seed(1)), dtype=dtype)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    W, H = a.width, a.height

    clip = comfy.clip_vision.Output()
    clip.penultimate_hidden_states = torch.zeros(1, 257, 1280)
    text = [[torch.zeros(1, 7, 64), {}]]

    def conditioning(ref, pose, neg, n, chunked):
        old = os.environ.get(vf.ENV_CHUNKED)
        os.environ[vf.ENV_CHUNKED] = "1" if chunked else "0"
        try:
            pos, _, neg_p, _ = cond.build_conditioning(text, text, vae, clip, clip, ref, pose, neg, W, H, n)
        finally:
            if old is None:
                os.environ.pop(vf.ENV_CHUNKED)
            else:
                os.environ[vf.ENV_CHUNKED] = old
        d = pos[0][1]
        return [d["concat_latent_image"], d["steadydancer_ref_latent"], d["steadydancer_pose_ref_latent"], d["steadydancer_pose_latent"], neg_p[0][1]["steadydancer_pose_latent"]]

    def timed(fn):
        best, out = None, None
        for _ in range(a.repeat):
            out = None
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            sync()
            t = time.perf_counter()
            out = fn()
            sync()
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        return best, out

    def compare(got, want):
        got = got if isinstance(got, (list, tuple)) else [got]
        want = want if isinstance(want, (list, tuple)) else [want]
        eq = all(g.shape == w.shape and torch.equal(g.cpu(), w.cpu()) for g, w in zip(got, want))
        diff = max(float((g.cpu().float() - w.cpu().float()).abs().max()) for g, w in zip(got, want))
        return {"equal": eq, "max_abs_diff": diff}

    with torch.inference_mode():
        # warm-up: cuDNN's kernel choice, the model's first load to the GPU
        w = torch.rand(9, H, W, 3)
        vf.decode(vae, vf.encode(vae, w))
        sync()
        setup = dict(setup_s=round(time.perf_counter() - t0, 1), rss_after_setup_gib=round(rss_gib(), 3))
        emit(
            a,
            {
                "env": dict(
                    torch=torch.__version__,
                    device=torch.cuda.get_device_name() if cuda else "cpu",
                    vae_dtype=str(vae.vae_dtype),
                    cudnn_benchmark=torch.backends.cudnn.benchmark,
                    size=f"{W}x{H}",
                    argv=sys.argv[1:],
                    **setup,
                )
            },
        )
        jobs = [a.child.split(":")] if a.child else [(c, f) for f in a.frames.split(",") for c in a.cases.split(",")]
        cache = {}
        for case, frames in jobs:
            n = int(frames)
            g = torch.Generator().manual_seed(n)
            if n not in cache:
                cache.clear()
                ref = torch.rand(1, H, W, 3, generator=g)
                cache[n] = dict(ref=ref, pose=torch.rand(n, H, W, 3, generator=g), neg=torch.rand(n, H, W, 3, generator=g), z=torch.randn(1, 16, 1 + (n - 1) // 4, H // 8, W // 8, generator=g))
            c = cache[n]
            rss0 = rss_gib()
            rec = dict(case=case, frames=n, size=f"{W}x{H}")
            info = {}

            def grey():
                v = torch.full((n, H, W, 3), 0.5)
                v[:1] = c["ref"]
                return v

            if case == "core_encode":
                s, out = timed(lambda: vae.encode(c["pose"]))
                c["core_pose"] = out
            elif case == "chunked_encode":
                s, out = timed(lambda: vf.encode(vae, c["pose"], info=info))
                rec.update(compare(out, c["core_pose"]) if "core_pose" in c else {})
            elif case == "core_concat":
                s, out = timed(lambda: vae.encode(grey()))
                c["core_concat"] = out
            elif case == "shortcut_concat":
                s, out = timed(lambda: vf.encode_ref_then_fill(vae, c["ref"], n, 0.5, info=info))
                rec.update(compare(out, c["core_concat"]) if "core_concat" in c else {})
            elif case == "separate_2":
                s, out = timed(lambda: vf.encode_many(vae, [c["pose"], c["neg"]], batch=False, info=info))
                c["separate"] = out
            elif case == "batched_2":
                s, out = timed(lambda: vf.encode_many(vae, [c["pose"], c["neg"]], batch=True, info=info))
                rec.update(compare(out, c["separate"]) if "separate" in c else {})
            elif case == "core_decode":
                s, out = timed(lambda: vae.decode(c["z"]))
                c["core_decode"] = out
            elif case == "chunked_decode":
                s, out = timed(lambda: vf.decode(vae, c["z"], info=info))
                rec.update(compare(out, c["core_decode"]) if "core_decode" in c else {})
            elif case == "core_conditioning":
                s, out = timed(lambda: conditioning(c["ref"], c["pose"], c["neg"], n, False))
                c["core_cond"] = out
            elif case == "fast_conditioning":
                s, out = timed(lambda: conditioning(c["ref"], c["pose"], c["neg"], n, True))
                rec.update(compare(out, c["core_cond"]) if "core_cond" in c else {})
            else:
                raise SystemExit(f"unknown case {case!r}; cases: {', '.join(CASES)}")
            rec["s"] = round(s, 3)
            rec.update({k: v for k, v in info.items() if k != "path"})
            if cuda:
                rec.update(peak_alloc_gib=round(torch.cuda.max_memory_allocated() / 2**30, 3), peak_reserved_gib=round(torch.cuda.max_memory_reserved() / 2**30, 3))
            if a.child:
                rec.update(rss_gib=round(rss_gib(), 3), rss_growth_gib=round(rss_gib() - rss0, 3))
            del out
            emit(a, rec)


if __name__ == "__main__":
    main()
