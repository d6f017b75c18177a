#!/usr/bin/env python3
"""Long videos: the dance job's model part at several lengths, sampled in context windows.

In one process (no server), per length: SteadyDancerConditioning's ``build_conditioning`` (two
VAE encodes of the frames: concat latent and poses, plus reference and first pose; the negative
poses are not encoded, as in the workflow, where the guider's lazy negative_pose input skips them
with pose CFG off — before that change this bench encoded them too)
with a full-size random Wan 2.1 VAE; sampling with our guider under our context-window handler
(``context_windows.apply_context_windows``: window 81 frames, overlap 16, pyramid fuse) with the
fast preset (cfg 1, pose cfg 0, Euler, 4 steps, shift 5; the LoRA's weights merge into the model
and cost nothing per step); VAE decode of every frame. Full-size random SteadyDancer weights
(14B shape, Kijai's fp8-scaled layout) are generated on the GPU (bench/steadydancer_forward.py's
``random_state_dict``) and loaded through our loader. Not in the figures: pose detection (its
ONNX stand-ins are not the real size), CLIP vision (one image each, independent of length) and
text (cached), which take the same time at every length.

    python3 bench/long_video.py --comfyui DIR --pack DIR --frames 81,481,161,321 --jsonl OUT.jsonl
    python3 bench/long_video.py --comfyui DIR --pack DIR --tiny          # CPU smoke run

Seconds per step are the gaps between the sampler's step callbacks (CUDA synchronised); "job" is
encode + sampling + decode. A warm-up run (81 frames, 1 step) loads the model first, so every
figure is warm. Peak VRAM: torch's max allocated / reserved per stage (encode, sampling, decode) and
nvidia-smi's memory.used sampled every 0.1 s (the cache is emptied between lengths).
"""

import argparse
import gc
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent


class SmiPeak:
    def __init__(self):
        self.peak, self._stop, self._t = 0, threading.Event(), None

    def _run(self):
        while not self._stop.is_set():
            try:
                v = int(subprocess.check_output(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], timeout=5).split()[0])
                self.peak = max(self.peak, v)
            except Exception:
                pass
            time.sleep(0.1)

    def __enter__(self):
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()


def load_pack(pack: Path):
    pkg = types.ModuleType("sdpack")
    pkg.__path__ = [str(pack)]
    sys.modules["sdpack"] = pkg
    sys.path.insert(0, str(pack))  # steadydancer_forward imports ``steadydancer.convert``
    import importlib

    return {n: importlib.import_module(f"sdpack.{n}") for n in ("guidance", "context_windows", "nodes_conditioning", "steadydancer.loading", "steadydancer.fast")}


def module_from(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--pack", required=True, help="the comfyui-steadydancer folder")
    ap.add_argument("--frames", default="81,481,161,321")
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=832)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--window", type=int, default=81)
    ap.add_argument("--overlap", type=int, default=16)
    ap.add_argument("--fuse", default="pyramid")
    ap.add_argument("--tiny", action="store_true", help="tiny model at 64x64 (a CPU run; without --frames: 13 and 33 frames in windows of 13/4)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the 1-step warm-up (the first job's step 1 then loads the model)")
    ap.add_argument("--stand-in-vae", action="store_true", help="average-pool stand-in encoder and no decode (sampling scaling on CPU without the 1 s/frame VAE)")
    ap.add_argument("--speed", choices=("auto", "none"), default="auto", help="the pack's fast path (auto, as the loader node) or ComfyUI's block path")
    ap.add_argument(
        "--allocator",
        choices=("comfyui", "native", "expandable"),
        default="comfyui",
        help="CUDA allocator: comfyui = what ComfyUI's main.py sets on a cu torch (backend:cudaMallocAsync), native = torch's caching allocator, expandable = it with expandable_segments:True",
    )
    ap.add_argument("--jsonl")
    a = ap.parse_args()
    if not a.tiny and "PYTORCH_CUDA_ALLOC_CONF" not in os.environ:  # before torch starts CUDA
        conf = {"comfyui": "backend:cudaMallocAsync", "native": "", "expandable": "expandable_segments:True"}[a.allocator]
        if conf:
            os.environ["PYTORCH_CUDA_ALLOC_CONF"] = conf
    if a.tiny:
        a.width = a.height = 64
        if a.frames == ap.get_default("frames"):
            a.frames = "13,33"
            a.window, a.overlap = 13, 4

    sys.path.insert(0, str(a.comfyui))
    import warnings

    warnings.filterwarnings("ignore", message="Using a non-tuple sequence")
    import torch
    import comfy.options  # noqa: F401
    from comfy.cli_args import args

    if not torch.cuda.is_available():
        args.cpu = True
    import comfy.model_management as mm
    import comfy.model_sampling
    import comfy.samplers
    import comfy.sd
    import comfy.clip_vision

    mods = load_pack(Path(a.pack))
    fwd = module_from(HERE / "steadydancer_forward.py", "sd_forward_bench")
    tiny_models = module_from(Path(a.pack) / "tests" / "fixtures" / "make_tiny_models.py", "sd_make_tiny")
    cw, guidance, cond = mods["context_windows"], mods["guidance"], mods["nodes_conditioning"]
    device = mm.get_torch_device()
    cuda = device.type == "cuda"
    out = open(a.jsonl, "a") if a.jsonl else None

    def emit(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    emit({"env": dict(torch=torch.__version__, gpu=torch.cuda.get_device_name() if cuda else "cpu", vram_state=str(mm.vram_state), argv=sys.argv[1:])})
    t0 = time.time()
    c = fwd.TINY if a.tiny else fwd.FULL
    sd = fwd.random_state_dict(c, "fp8", device)
    # --speed auto: the loader node's default (fast.resolve(): FA3 fp8 / SageAttention2, row-wise fp8
    # linears, one compiled block where the GPU has them); none: ComfyUI's plain block path
    speed = mods["steadydancer.fast"].resolve() if a.speed == "auto" else None
    patcher = mods["steadydancer.loading"].load_state_dict_model(sd, "default", layout="kj-fp8-scaled", num_heads=c["num_heads"], speed=speed)
    del sd
    gc.collect()

    class FlowShift(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        pass

    ms = FlowShift(patcher.model.model_config)
    ms.set_parameters(shift=5.0, multiplier=1000)  # what ModelSamplingSD3(shift=5) patches in
    patcher.add_object_patch("model_sampling", ms)
    if a.stand_in_vae:

        class PoolVAE:  # IMAGE [N, H, W, 3] -> [1, 16, (N-1)//4+1, H/8, W/8]; decode: not timed
            def encode(self, img):
                x = torch.nn.functional.avg_pool2d(img.movedim(-1, 1), 8)
                x = torch.cat([x] * 6, dim=1)[:, :16][torch.arange(0, img.shape[0], 4)]
                return (x * 2 - 1).movedim(0, 1).unsqueeze(0)

            def decode(self, z):
                return torch.zeros(1, (z.shape[2] - 1) * 4 + 1, 1, 1, 3)

        vae = PoolVAE()
    else:
        vae = comfy.sd.VAE(sd=tiny_models.wan_vae(Path(a.comfyui), torch.Generator().manual_seed(1)))
    emit({"setup_s": round(time.time() - t0, 1), "dim": c["dim"], "layers": c["num_layers"], "speed": str(speed)})

    def clip_out(seed):
        o = comfy.clip_vision.Output()
        o.penultimate_hidden_states = torch.randn(1, 257, 1280, generator=torch.Generator().manual_seed(seed))
        return o

    text_dim = c["text_dim"]
    text = lambda s: [[torch.randn(1, 512, text_dim, generator=torch.Generator().manual_seed(s)) * 0.1, {}]]  # noqa: E731

    def mem_mark():
        """Peak allocated / reserved GiB of the stage just run (peaks reset after), reserved held at its end."""
        if not cuda:
            return {}
        m = {
            "peak_alloc_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
            "reserved_end_gib": round(torch.cuda.memory_reserved() / 2**30, 2),
        }
        torch.cuda.reset_peak_memory_stats()
        return m

    def job(frames, steps):
        g = torch.Generator().manual_seed(frames)
        ref = torch.rand(1, a.height, a.width, 3, generator=g)
        pose = torch.rand(frames, a.height, a.width, 3, generator=g)
        gc.collect()
        stage_mem = {}
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        with SmiPeak() as smi:
            sync = torch.cuda.synchronize if cuda else (lambda: None)
            t_a = time.perf_counter()
            pos, neg, neg_p, latent = cond.build_conditioning(text(1), text(2), vae, clip_out(3), clip_out(4), ref, pose, None, a.width, a.height, frames)
            sync()
            t_b = time.perf_counter()
            stage_mem["encode"] = mem_mark()
            model = cw.apply_context_windows(patcher, a.window, a.overlap, a.fuse)
            guider = guidance.SteadyDancerCFGGuider(model)
            guider.set_conds(pos, neg, neg_p)
            guider.set_cfg(1.0, 0.0)
            sigmas = comfy.samplers.calculate_sigmas(ms, "simple", steps)
            noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(1))
            marks = []

            def cb(step, x0, x, total):
                sync()
                marks.append(time.perf_counter())

            samples = guider.sample(noise, latent["samples"], comfy.samplers.sampler_object("euler"), sigmas, callback=cb, seed=1)
            sync()
            t_c = time.perf_counter()
            stage_mem["sampling"] = mem_mark()
            images = vae.decode(samples)
            sync()
            t_d = time.perf_counter()
            stage_mem["decode"] = mem_mark()
        per_step = [round(t - s, 3) for s, t in zip([t_b] + marks[:-1], marks)]
        rec = dict(
            frames=frames,
            size=f"{a.width}x{a.height}",
            latent_frames=int(latent["samples"].shape[2]),
            windows=len(cw.frame_windows(frames, a.window, a.overlap)),
            window=a.window,
            overlap=a.overlap,
            fuse=a.fuse,
            steps=steps,
            s_per_step=per_step,
            s_per_step_warm=round(sum(per_step[1:]) / max(1, len(per_step) - 1), 3) if len(per_step) > 1 else per_step[0],
            encode_s=round(t_b - t_a, 2),
            sampling_s=round(t_c - t_b, 2),
            decode_s=round(t_d - t_c, 2),
            job_s=round(t_d - t_a, 2),
            out_frames=int(images.shape[0] if images.ndim == 4 else images.shape[1]),
            finite=bool(torch.isfinite(samples).all()),
        )
        if cuda:
            rec.update(
                peak_alloc_gib=max(m["peak_alloc_gib"] for m in stage_mem.values()),
                peak_reserved_gib=max(m["peak_reserved_gib"] for m in stage_mem.values()),
                smi_peak_mib=smi.peak,
                stage_mem=stage_mem,
                alloc_conf=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
            )
        del pos, neg, neg_p, latent, samples, images, guider, model
        return rec

    with torch.inference_mode():
        if not a.no_warmup:
            emit({"warmup": job(a.window, 1)})
        for f in [int(v) for v in a.frames.split(",")]:
            emit(job(f, a.steps))
    if out:
        out.close()


if __name__ == "__main__":
    main()
