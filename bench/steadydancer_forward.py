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
    python3 bench/steadydancer_forward.py --comfyui PATH --speeds sdpa:rowwise:on,fa3_fp8:rowwise:on \
        --sizes 832x480x81 --backbone --kernels 35880 --sample-steps 4 --jsonl out.jsonl   # issue #13

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
# num_heads: Wan2.1-14B has 40 heads of 128 (convert.KNOWN_HEADS[5120]); the tiny one 2 of 128
FULL = dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, in_dim=36, out_dim=16, text_dim=4096, freq_dim=256)
TINY = dict(dim=256, ffn_dim=512, num_heads=2, num_layers=2, in_dim=36, out_dim=16, text_dim=64, freq_dim=64)


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
    return dict(
        patch_size=(1, 2, 2),
        text_len=512,
        in_dim_c=16,
        noise_dim=16,
        align_hidden=128,
        align_heads=8,
        dy_dim=4,
        dy_squeeze=4,
        dy_mul=1,
        cross_attn_norm=True,
        qk_norm=True,
        eps=1e-6,
        **c,
    )


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
    env = dict(
        torch=torch.__version__,
        cuda=torch.version.cuda,
        gpu=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        vram_state=str(mm.vram_state),
        fp8_compute=mm.supports_fp8_compute(device),
    )
    print(json.dumps({"env": env}), flush=True)
    c = TINY if a.tiny else FULL
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]
    results = []
    for path in a.paths.split(","):
        t0 = time.time()
        sd = random_state_dict(c, path, device)
        gen_s = time.time() - t0
        t0 = time.time()
        patcher = load_state_dict_model(
            sd, {"fp8": "default", "fp8_fast": "fp8_e4m3fn_fast", "bf16": "bf16"}[path], num_heads=our_config(c)["num_heads"], layout="kj-fp8-scaled" if path.startswith("fp8") else "kj-fp16"
        )
        del sd
        mm.load_models_gpu([patcher], force_full_load=True)
        load_s = time.time() - t0
        model = patcher.model
        dm = model.diffusion_model
        q = dm.blocks[0].self_attn.q
        info = dict(
            path=path,
            gen_s=round(gen_s, 1),
            load_s=round(load_s, 1),
            q_weight_dtype=str(q.weight.dtype),
            linear_op=type(q).__qualname__,
            fp8_matmul=bool(model.model_config.optimizations.get("fp8")) and mm.supports_fp8_compute(device),
            compute_dtype=str(model.get_dtype() if model.manual_cast_dtype is None else model.manual_cast_dtype),
            attention=attn.optimized_attention.__name__,
            weights_gib=round(sum(p.numel() * p.element_size() for p in dm.parameters()) / 2**30, 2),
        )
        for w, h, f in sizes:
            T, lh, lw = (f - 1) // 4 + 1, h // 8, w // 8
            tokens = (T + 2) * (lh // 2) * (lw // 2)
            dt = torch.float32
            gen = torch.Generator(device=device).manual_seed(1)
            r = lambda *s: torch.randn(*s, generator=gen, device=device, dtype=dt)  # noqa: E731
            kw = dict(
                c_concat=r(1, 20, T, lh, lw),
                c_crossattn=r(1, 512, c["text_dim"]),
                clip_fea=r(1, 257, 1280),
                sd_clip_pose=r(1, 257, 1280),
                sd_pose=r(1, 16, T, lh, lw),
                sd_ref=r(1, 16, 1, lh, lw),
                sd_pose_ref=r(1, 16, 1, lh, lw),
            )
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
            res = dict(
                info,
                size=f"{w}x{h}x{f}",
                tokens=tokens,
                seconds=[round(t, 3) for t in times],
                s_per_forward=round(min(times), 3),
                peak_gib=round(peak, 2),
                finite=bool(torch.isfinite(out).all()),
                out_shape=list(out.shape),
            )
            print(json.dumps(res), flush=True)
            results.append(res)
        del model, dm, q, patcher, out
        mm.unload_all_models()
        gc.collect()
        mm.soft_empty_cache()
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return results


# --- speed paths (issue #13): one fp8 model, each attention / fp8 / compile choice, beside a
# plain-PyTorch bf16 backbone, with accuracy against ComfyUI's plain path ----------------------
def emit(a, rec):
    print(json.dumps(rec), flush=True)
    if a.jsonl:
        with open(a.jsonl, "a") as f:
            f.write(json.dumps(rec) + "\n")


def sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def cuda_time(fn, repeat):
    """Median seconds of ``fn()`` over ``repeat`` runs: CUDA events (after the caller's warm-up);
    a host clock on CPU (the --tiny smoke test)."""
    import torch

    ts = []
    for _ in range(repeat):
        if not torch.cuda.is_available():
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
            continue
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / 1000)
    ts.sort()
    return ts[len(ts) // 2], ts


def rel_l2(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def plain_backbone(c, device):
    """What anyone gets from plain PyTorch: Wan2.1-14B's 40 blocks (same shapes as ours), bf16
    nn.Linear/LayerNorm, RoPE, SDPA, eager, random weights."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    dim, ffn, heads = c["dim"], c["ffn_dim"], c["num_heads"]
    kw = dict(device=device, dtype=torch.bfloat16)

    class RMS(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(dim, **kw))

        def forward(self, x):
            return F.rms_norm(x, (dim,), self.weight, 1e-6)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            L = lambda: nn.Linear(dim, dim, **kw)  # noqa: E731
            self.q, self.k, self.v, self.o = L(), L(), L(), L()
            self.cq, self.ck, self.cv, self.co, self.cki, self.cvi = L(), L(), L(), L(), L(), L()
            self.nq, self.nk, self.cnq, self.cnk, self.cnki = RMS(), RMS(), RMS(), RMS(), RMS()
            self.norm3 = nn.LayerNorm(dim, 1e-6, **kw)
            self.f1, self.f2 = nn.Linear(dim, ffn, **kw), nn.Linear(ffn, dim, **kw)
            self.mod = nn.Parameter(torch.randn(1, 6, dim, **kw) / dim**0.5)

        def forward(self, x, e, cos, sin, ctx):
            b, s, _ = x.shape
            m = (self.mod + e).chunk(6, dim=1)
            ln = lambda t: F.layer_norm(t, (dim,), eps=1e-6)  # noqa: E731
            hd = lambda t: t.view(b, -1, heads, dim // heads).transpose(1, 2)  # noqa: E731

            def rope(t):
                t1, t2 = t[..., 0::2], t[..., 1::2]
                return torch.stack([t1 * cos - t2 * sin, t1 * sin + t2 * cos], -1).flatten(-2).type_as(t)

            y = ln(x) * (1 + m[1]) + m[0]
            q, k, v = rope(hd(self.nq(self.q(y)))), rope(hd(self.nk(self.k(y)))), hd(self.v(y))
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, dim)
            x = x + self.o(a) * m[2]
            y = self.norm3(x)
            ci, ct = ctx[:, :257], ctx[:, 257:]
            q = hd(self.cnq(self.cq(y)))
            a = F.scaled_dot_product_attention(q, hd(self.cnk(self.ck(ct))), hd(self.cv(ct)))
            a = a + F.scaled_dot_product_attention(q, hd(self.cnki(self.cki(ci))), hd(self.cvi(ci)))
            x = x + self.co(a.transpose(1, 2).reshape(b, s, dim))
            y = ln(x) * (1 + m[4]) + m[3]
            return x + self.f2(F.gelu(self.f1(y), approximate="tanh")) * m[5]

    blocks = nn.ModuleList([Block() for _ in range(c["num_layers"])])
    with torch.no_grad():
        for mod in blocks.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.normal_(0, mod.in_features**-0.5)
                mod.bias.zero_()

    def run(x, e, cos, sin, ctx):
        for blk in blocks:
            x = blk(x, e, cos, sin, ctx)
        return x

    return blocks, run


def kernel_check(a, tokens, heads=40, head_dim=128, repeat=10):
    """Each attention kernel on Wan-like q/k/v (per-channel offsets on k and v, as Wan's are) vs
    fp32 SDPA: rel L2, cosine and ms / TFLOP/s per call at ``tokens`` tokens."""
    import torch
    from steadydancer import fast

    g = torch.Generator(device="cuda").manual_seed(11)
    r = lambda *s: torch.randn(*s, generator=g, device="cuda")  # noqa: E731
    q = r(1, tokens, heads, head_dim)
    k = r(1, tokens, heads, head_dim) + 2.0 * r(1, 1, heads, head_dim)
    v = r(1, tokens, heads, head_dim) + r(1, 1, heads, head_dim)
    ref = fast.attention_sdpa(q, k, v).float()
    qb, kb, vb = (t.to(torch.bfloat16) for t in (q, k, v))
    flops = 4 * tokens * tokens * heads * head_dim
    for name in ("sdpa", "sage", "fa3", "fa3_fp8"):
        why = fast.probe().missing(name)
        if why:
            emit(a, dict(kind="kernel", attention=name, skipped=why))
            continue
        try:
            out = fast.attention(qb, kb, vb, name)
            torch.cuda.synchronize()
            err, cos = rel_l2(out, ref), float(torch.nn.functional.cosine_similarity(out.double().flatten(), ref.double().flatten(), dim=0))
            med, _ = cuda_time(lambda qb=qb, kb=kb, vb=vb, name=name: fast.attention(qb, kb, vb, name), repeat)
            emit(a, dict(kind="kernel", attention=name, tokens=tokens, ms=round(med * 1e3, 2), tflops=round(flops / med / 1e12), rel_l2=float(f"{err:.3g}"), cos=round(cos, 6)))
        except Exception as e:
            emit(a, dict(kind="kernel", attention=name, error=f"{type(e).__name__}: {str(e)[:300]}"))
    del q, k, v, ref, qb, kb, vb
    torch.cuda.empty_cache()


def parse_speed(txt):
    from steadydancer import fast

    if txt == "comfy":
        return fast.Speed()
    att, fp8, comp, *extra = txt.split(":")
    fast.FP8_FAST_ACCUM = extra == ["fastacc"]  # a module global: dynamo guards on it (recompiles)
    return fast.Speed(att, fp8, comp == "on")


def sizes_of(a):
    return [tuple(int(v) for v in s.split("x")) for s in a.sizes.split(",")]


def run_speed(a):
    setup(a.comfyui, not a.tiny)
    import torch
    import comfy.model_management as mm
    from steadydancer import fast
    from steadydancer.loading import load_state_dict_model

    device = mm.get_torch_device()
    kern = fast.probe()
    emit(
        a,
        dict(
            kind="env",
            torch=torch.__version__,
            cuda=torch.version.cuda,
            gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            capability=list(kern.capability or ()),
            sage=kern.sage or "imports",
            fa3=kern.fa3 or "imports",
            auto=fast.resolve().as_options(),
        ),
    )
    if a.kernels:
        kernel_check(a, a.kernels)
    c = TINY if a.tiny else FULL
    t0 = time.time()
    sd = random_state_dict(c, "fp8", device)
    # loaded with a fast Speed: bf16 compute (what the loader does by default on this GPU)
    patcher = load_state_dict_model(sd, "default", layout="kj-fp8-scaled", num_heads=c["num_heads"], speed=fast.Speed("sdpa", "rowwise", True))
    del sd
    mm.load_models_gpu([patcher], force_full_load=True)
    model = patcher.model
    emit(
        a,
        dict(
            kind="load",
            seconds=round(time.time() - t0, 1),
            compute_dtype=str(model.manual_cast_dtype),
            weights_gib=round(sum(p.numel() * p.element_size() for p in model.diffusion_model.parameters()) / 2**30, 2),
        ),
    )
    speeds = ["comfy"] + [s for s in a.speeds.split(",") if s and s != "comfy"]
    backbone = plain_backbone(c, device) if a.backbone else None
    for w, h, f in sizes_of(a):
        T, lh, lw = (f - 1) // 4 + 1, h // 8, w // 8
        tokens = (T + 2) * (lh // 2) * (lw // 2)
        gen = torch.Generator(device=device).manual_seed(1)
        r = lambda *s: torch.randn(*s, generator=gen, device=device)  # noqa: E731
        kw = dict(
            c_concat=r(1, 20, T, lh, lw),
            c_crossattn=r(1, 512, c["text_dim"]),
            clip_fea=r(1, 257, 1280),
            sd_clip_pose=r(1, 257, 1280),
            sd_pose=r(1, 16, T, lh, lw),
            sd_ref=r(1, 16, 1, lh, lw),
            sd_pose_ref=r(1, 16, 1, lh, lw),
        )
        x, sigma = r(1, 16, T, lh, lw), torch.tensor([0.7], device=device)
        base = None
        if backbone is not None:
            blocks, bb = backbone
            xb, eb, ctx = (r(1, tokens, c["dim"]).bfloat16(), r(1, 6, c["dim"]).bfloat16() * 0.1, r(1, 769, c["dim"]).bfloat16())
            ang = r(tokens, 64)  # head dim 128: 64 rotation angles per token
            cos, sin = ang.cos().bfloat16()[None, None], ang.sin().bfloat16()[None, None]
            with torch.inference_mode():
                bb(xb, eb, cos, sin, ctx)
                med, ts = cuda_time(lambda: bb(xb, eb, cos, sin, ctx), a.repeat)
            base = med
            emit(a, dict(kind="backbone", size=f"{w}x{h}x{f}", tokens=tokens, s_per_forward=round(med, 3), seconds=[round(t, 3) for t in ts], what="plain PyTorch bf16 Wan2.1-14B blocks, SDPA, eager"))
            del xb, eb, ctx, cos, sin
        ref_out = ref_sample = None
        for name in speeds:
            speed = parse_speed(name)
            missing = fast.probe().missing(speed.attention)
            if missing:
                emit(a, dict(kind="forward", speed=name, size=f"{w}x{h}x{f}", skipped=missing))
                continue
            to = {fast.TRANSFORMER_OPTIONS_KEY: speed.as_options()}
            try:
                sync()
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                from torch._dynamo.utils import counters

                graphs0 = counters["stats"]["unique_graphs"]
                with torch.inference_mode():
                    t0 = time.perf_counter()
                    out = model.apply_model(x, sigma, transformer_options=to, **kw)  # warm-up (+ compile)
                    sync()
                    warm_s = time.perf_counter() - t0
                    med, ts = cuda_time(lambda: model.apply_model(x, sigma, transformer_options=to, **kw), a.repeat)
                    rec = dict(
                        kind="forward",
                        speed=name,
                        size=f"{w}x{h}x{f}",
                        tokens=tokens,
                        s_per_forward=round(med, 3),
                        seconds=[round(t, 3) for t in ts],
                        first_call_s=round(warm_s, 1),
                        peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
                        finite=bool(torch.isfinite(out).all()),
                        new_graphs=counters["stats"]["unique_graphs"] - graphs0,
                    )
                    if base:
                        rec["backbone_ratio"] = round(med / base, 3)
                    if ref_out is None:
                        ref_out = out.float()
                    else:
                        rec["forward_rel_l2_vs_comfy"] = float(f"{rel_l2(out, ref_out):.3g}")
                    if a.sample_steps and (w, h, f) == sizes_of(a)[0]:
                        smp = sample(model, x, kw, to, a.sample_steps)
                        if ref_sample is None:
                            ref_sample = smp
                        else:
                            rec["sample_rel_l2_vs_comfy"] = float(f"{rel_l2(smp, ref_sample):.3g}")
                emit(a, rec)
            except Exception as e:
                emit(a, dict(kind="forward", speed=name, size=f"{w}x{h}x{f}", error=f"{type(e).__name__}: {str(e)[:400]}"))
            finally:
                out = None
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        if a.outside:  # the work outside the 40 blocks: same call with no blocks
            dm = model.diffusion_model
            blocks, dm.blocks = dm.blocks, torch.nn.ModuleList()
            try:
                for name in speeds[:1] + speeds[-1:]:
                    to = {fast.TRANSFORMER_OPTIONS_KEY: parse_speed(name).as_options()}
                    with torch.inference_mode():
                        model.apply_model(x, sigma, transformer_options=to, **kw)
                        med, ts = cuda_time(lambda: model.apply_model(x, sigma, transformer_options=to, **kw), a.repeat)
                    emit(
                        a,
                        dict(
                            kind="outside_blocks",
                            speed=name,
                            size=f"{w}x{h}x{f}",
                            tokens=tokens,
                            seconds=round(med, 4),
                            what="apply_model with the 40 blocks removed: pose modules, patch embeddings, time/text/CLIP embeddings, head, unpatchify, ComfyUI call path",
                        ),
                    )
            finally:
                dm.blocks = blocks


def sample(model, x, kw, to, steps, shift=5.0):
    """Euler over the flow schedule with shift (the fast preset's sampler, cfg 1), from x as noise."""
    import torch

    t = torch.linspace(1, 0, steps + 1, device=x.device)
    sig = shift * t / (1 + (shift - 1) * t)
    z = x.clone()
    for i in range(steps):
        den = model.apply_model(z, sig[i : i + 1], transformer_options=to, **kw)
        z = z + (z - den) / sig[i] * (sig[i + 1] - sig[i])
    return z.float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", required=True)
    ap.add_argument("--paths", default="fp8,fp8_fast,bf16")
    ap.add_argument("--sizes", default="832x480x81,512x512x33")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="tiny model on CPU (smoke test of this script)")
    ap.add_argument("--json")
    ap.add_argument(
        "--speeds",
        help="speed mode: comma list of attention:fp8:compile[:fastacc] (e.g. "
        "fa3_fp8:rowwise:on:fastacc = the pack's default on an H200; without :fastacc the fp8 "
        "matmuls promote partial sums to fp32); "
        "'comfy' (ComfyUI's plain block path, SDPA, bf16 compute) always runs first as the reference",
    )
    ap.add_argument("--backbone", action="store_true", help="speed mode: time the plain-PyTorch bf16 backbone too")
    ap.add_argument("--kernels", type=int, default=0, help="speed mode: attention kernels alone at this many tokens")
    ap.add_argument("--sample-steps", type=int, default=0, help="speed mode: N-step sample at the first size, vs comfy")
    ap.add_argument("--outside", action="store_true", help="speed mode: time the work outside the blocks")
    ap.add_argument("--jsonl", help="speed mode: append each record to this file as it comes")
    a = ap.parse_args()
    if a.speeds is not None:
        return run_speed(a)
    if a.tiny and a.sizes == ap.get_default("sizes"):
        a.sizes = "64x32x5,32x32x9"
    run(a)


if __name__ == "__main__":
    main()
