#!/usr/bin/env python3
"""One SteadyDancer forward at full size through ComfyUI core (our node pack's model + loader).

Builds random weights ON THE DEVICE in a checkpoint layout (kj-fp8-scaled: block Linear weights
float8_e4m3fn + per-tensor scale_weight, the rest bf16; or bf16), loads them through our loader
(convert → model config → ComfyUI model_base/ops → ModelPatcher), moves the model with ComfyUI's
model management, and times ``BaseModel.apply_model`` (ComfyUI's own call path: timestep from
sigma, dtype casts, extra kwargs) for each video size.

    python3 bench/steadydancer_forward.py --comfyui PATH [--paths fp8,fp8_fast,bf16]
        [--sizes 832x480x81,512x512x33] [--repeat 2] [--json out.json]
    python3 bench/steadydancer_forward.py --comfyui PATH --tiny      # CPU smoke test

Tokens = (T + 2) · (H/16) · (W/16) with T = (frames - 1)/4 + 1 (the +2: reference image and
reference pose frames appended along time).
"""
import argparse
import gc
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FULL = dict(dim=5120, ffn_dim=13824, num_layers=40, in_dim=36, out_dim=16, text_dim=4096, freq_dim=256)
TINY = dict(dim=256, ffn_dim=512, num_layers=2, in_dim=36, out_dim=16, text_dim=64, freq_dim=64)


def setup(comfyui, gpu_only):
    sys.path.insert(0, str(comfyui))
    sys.path.insert(0, str(ROOT / "comfyui-steadydancer"))
    import torch
    import comfy.options  # noqa: F401
    from comfy.cli_args import args
    if not torch.cuda.is_available():
        args.cpu = True
    elif gpu_only:
        args.gpu_only = True  # ComfyUI's --gpu-only: build and keep the model on the GPU
    import comfy.model_management  # noqa: F401


def our_config(c):
    return dict(patch_size=(1, 2, 2), text_len=512, num_heads=c["dim"] // 128, in_dim_c=16, noise_dim=16,
                align_hidden=128, align_heads=8, dy_dim=4, dy_squeeze=4, dy_mul=1, cross_attn_norm=True,
                qk_norm=True, eps=1e-6, **c)


def random_state_dict(c, path, device):
    """Random weights in the given layout, generated on ``device`` (no transfer of 14B weights)."""
    import torch
    from steadydancer.convert import expected_keys, quantize_fp8
    shapes, linears = expected_keys(our_config(c))
    g = torch.Generator(device=device)
    g.manual_seed(0)
    sd = {}
    for k in sorted(shapes):
        s = shapes[k]
        base = k.rsplit(".", 1)[0]
        w = torch.randn(s, generator=g, device=device, dtype=torch.bfloat16)
        if len(s) >= 2 and "modulation" not in k:
            w = w / math.sqrt(math.prod(s[1:]))
        elif k.endswith("weight") and ("norm" in k or "bn" in k):
            w = 1 + 0.1 * w
        else:
            w = 0.02 * w
        if path.startswith("fp8") and base in linears and k.endswith(".weight") and k.startswith("blocks."):
            sd[k], sd[base + ".scale_weight"] = quantize_fp8(w)
        else:
            sd[k] = w
    if path.startswith("fp8"):
        sd["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn, device=device)
    return sd


def run(a):
    setup(a.comfyui, not a.tiny)
    import torch
    import comfy.model_management as mm
    import comfy.ldm.modules.attention as attn
    from steadydancer.loading import load_state_dict_model

    device = mm.get_torch_device()
    env = dict(torch=torch.__version__, cuda=torch.version.cuda,
               gpu=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               vram_state=str(mm.vram_state), fp8_compute=mm.supports_fp8_compute(device))
    print(json.dumps({"env": env}), flush=True)
    c = TINY if a.tiny else FULL
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    results = []
    for path in a.paths.split(","):
        t0 = time.time()
        sd = random_state_dict(c, path, device)
        gen_s = time.time() - t0
        t0 = time.time()
        patcher = load_state_dict_model(sd, {"fp8": "default", "fp8_fast": "fp8_e4m3fn_fast", "bf16": "bf16"}[path],
                                        num_heads=our_config(c)["num_heads"],
                                        layout="kj-fp8-scaled" if path.startswith("fp8") else "kj-fp16")
        del sd
        mm.load_models_gpu([patcher], force_full_load=True)
        load_s = time.time() - t0
        model = patcher.model
        dm = model.diffusion_model
        q = dm.blocks[0].self_attn.q
        info = dict(path=path, gen_s=round(gen_s, 1), load_s=round(load_s, 1),
                    q_weight_dtype=str(q.weight.dtype), linear_op=type(q).__qualname__,
                    fp8_matmul=bool(model.model_config.optimizations.get("fp8")) and mm.supports_fp8_compute(device),
                    compute_dtype=str(model.get_dtype() if model.manual_cast_dtype is None else model.manual_cast_dtype),
                    attention=attn.optimized_attention.__name__,
                    weights_gib=round(sum(p.numel() * p.element_size() for p in dm.parameters()) / 2**30, 2))
        for (w, h, f) in sizes:
            T, lh, lw = (f - 1) // 4 + 1, h // 8, w // 8
            tokens = (T + 2) * (lh // 2) * (lw // 2)
            dt = torch.float32
            gen = torch.Generator(device=device).manual_seed(1)
            r = lambda *s: torch.randn(*s, generator=gen, device=device, dtype=dt)  # noqa: E731
            kw = dict(c_concat=r(1, 20, T, lh, lw), c_crossattn=r(1, 512, c["text_dim"]),
                      clip_fea=r(1, 257, 1280), sd_clip_pose=r(1, 257, 1280), sd_pose=r(1, 16, T, lh, lw),
                      sd_ref=r(1, 16, 1, lh, lw), sd_pose_ref=r(1, 16, 1, lh, lw))
            x, sigma = r(1, 16, T, lh, lw), torch.tensor([0.7], device=device)
            times = []
            with torch.inference_mode():
                out = model.apply_model(x, sigma, **kw)  # warm-up
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                for _ in range(a.repeat):
                    t0 = time.perf_counter()
                    out = model.apply_model(x, sigma, **kw)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
            res = dict(info, size=f"{w}x{h}x{f}", tokens=tokens, seconds=[round(t, 3) for t in times],
                       s_per_forward=round(min(times), 3), peak_gib=round(peak, 2),
                       finite=bool(torch.isfinite(out).all()), out_shape=list(out.shape))
            print(json.dumps(res), flush=True)
            results.append(res)
        del model, dm, q, patcher, out
        mm.unload_all_models()
        gc.collect()
        mm.soft_empty_cache()
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--paths", default="fp8,fp8_fast,bf16")
    ap.add_argument("--sizes", default="832x480x81,512x512x33")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="tiny model on CPU (smoke test of this script)")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.tiny and a.sizes == ap.get_default("sizes"):
        a.sizes = "64x32x5,32x32x9"
    run(a)


if __name__ == "__main__":
    main()
