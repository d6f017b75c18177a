#!/usr/bin/env python3
"""Regenerate the parity goldens from the official SteadyDancer code (the oracle).

    .venv/bin/python comfyui-steadydancer/tests/make_goldens.py [--out DIR] [--source DIR]

Needs only the official source at the pinned commit in the source cache (plus torch, diffusers,
einops, safetensors from the venv); it never imports ComfyUI. The official modules are imported
from the cache unchanged, with two substitutions made at import time, nothing edited:

* ``wan.modules.attention.flash_attention`` (needs a GPU library) → exact softmax attention with
  ``torch.nn.functional.scaled_dot_product_attention`` in the promoted dtype of q/k/v, keys past
  ``k_lens`` masked, result in q's dtype — what flash attention computes, without its bf16 cast.
* the module's ``torch.bfloat16`` name resolves to float32: the official forward hard-codes bf16
  casts (``x.to(torch.bfloat16)`` after self-attention, bf16 autocast regions on CUDA) that make an
  fp32 comparison impossible on CPU; the oracle is the official math in fp32.

Outputs ``golden/parity.npz``: for every case the small latent inputs and the oracle output for
three weight variants — ``fp32`` (the recipe weights: official layout), ``fp16`` (the same weights
rounded to fp16: Kijai fp16 layout) and ``fp8`` (the Kijai fp8-scaled FILE written by
``layouts.write_layout``, read back and dequantised as the file stores it: fp8 × scale_weight
where it holds fp8, its fp16 tensors as they are — no re-quantisation of anything it keeps in
high precision) — plus ``meta`` (JSON: config, seeds, SHA-256 fingerprints of the recipe weights
and shared inputs, the CPU kernel ISA used).

Deterministic: one CPU thread, fixed seeds, and the CPU kernel ISA pinned to AVX2 when run as a
script on x86-64 (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``, set before torch is
imported): AVX-512 kernels sum in another order and move outputs by a few ulps.
``test_goldens_regen.py`` compares a rerun with the committed goldens within ``ULPS`` ulps.
"""

import os
import platform

# pinned ISA: only effective before torch is imported, i.e. when this file runs as a script
PINNED_ISA = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
if __name__ == "__main__" and platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.update(PINNED_ISA)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import golden_recipe as R  # noqa: E402

OFFICIAL_COMMIT = "866a7219e74923d9486ab611cd981b15e5d959e5"
PKG = "_steadydancer_official"


def default_source():
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "steadydancer" / "sources" / f"SteadyDancer@{OFFICIAL_COMMIT}"


def sdpa_flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0.0, softmax_scale=None, q_scale=None, causal=False, window_size=(-1, -1), deterministic=False, dtype=None, version=None):
    """[B, L, N, C] exact attention (the oracle's stand-in for flash_attention)."""
    if window_size != (-1, -1) or causal or dropout_p or q_scale is not None:
        raise NotImplementedError("oracle attention: only the full, non-causal case is used by SteadyDancer")
    out_dtype = q.dtype
    ct = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    qh, kh, vh = (t.to(ct).transpose(1, 2) for t in (q, k, v))
    mask = None
    if k_lens is not None:
        idx = torch.arange(k.shape[1], device=k.device)
        mask = (idx[None, :] < k_lens.to(k.device)[:, None])[:, None, None, :]
    o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=softmax_scale)
    return o.transpose(1, 2).to(out_dtype)


class _Fp32Torch(types.ModuleType):
    """``torch`` with ``bfloat16`` resolving to float32 (see the module docstring)."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        return torch.float32 if name == "bfloat16" else getattr(torch, name)


def load_official(source):
    mod_dir = Path(source) / "wan" / "modules"
    if not (mod_dir / "model_dancer.py").is_file():
        raise SystemExit(f"official source not found at {source} (wan/modules/model_dancer.py)")
    pkg = types.ModuleType(PKG)
    pkg.__path__ = [str(mod_dir)]  # a bare package: wan/modules/__init__.py (T5, VAE…) is not run
    sys.modules[PKG] = pkg
    attn = types.ModuleType(PKG + ".attention")
    attn.flash_attention = sdpa_flash_attention
    sys.modules[PKG + ".attention"] = attn

    def load(name):
        spec = importlib.util.spec_from_file_location(f"{PKG}.{name}", mod_dir / f"{name}.py")
        m = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = m
        spec.loader.exec_module(m)
        return m

    load("small_archs")
    load("mobilenetv2_dcd")
    md = load("model_dancer")
    md.torch = _Fp32Torch()
    return md


def official_model(md, weights):
    c = R.CONFIG
    m = md.WanModel(
        model_type="i2v",
        in_dim=c["in_dim"],
        dim=c["dim"],
        ffn_dim=c["ffn_dim"],
        freq_dim=c["freq_dim"],
        text_dim=c["text_dim"],
        out_dim=c["out_dim"],
        num_heads=c["num_heads"],
        num_layers=c["num_layers"],
        text_len=c["text_len"],
        cross_attn_norm=True,
        qk_norm=True,
        eps=1e-6,
    )
    m.load_state_dict(weights, strict=True)
    return m.eval().float()


def official_shapes(md):
    c = R.CONFIG
    with torch.device("meta"):
        m = md.WanModel(
            model_type="i2v",
            in_dim=c["in_dim"],
            dim=c["dim"],
            ffn_dim=c["ffn_dim"],
            freq_dim=c["freq_dim"],
            text_dim=c["text_dim"],
            out_dim=c["out_dim"],
            num_heads=c["num_heads"],
            num_layers=c["num_layers"],
            cross_attn_norm=True,
        )
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def dequantised_file(path):
    """The tensors a scaled-fp8 file holds, as the real weights: fp8 × scale_weight, the rest as stored."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = {k: f.get_tensor(k) for k in f.keys()}
    out = {}
    for k, v in raw.items():
        if k == "scaled_fp8" or k.endswith(".scale_weight"):
            continue
        if v.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            v = v.float() * raw[k[: -len("weight")] + "scale_weight"].float()
        out[k] = v.float()
    return out


def variants(weights):
    """fp32 / fp16 / fp8 weight variants: what each layout's file holds (fp32 compute)."""
    import_steadydancer()
    from steadydancer.layouts import write_layout

    fp16 = {k: v.half().float() for k, v in weights.items()}
    with tempfile.TemporaryDirectory() as d:
        fp8 = dequantised_file(write_layout(weights, "kj-fp8-scaled", Path(d) / "sd_fp8_e4m3fn_scaled_KJ.safetensors"))
    return {"fp32": weights, "fp16": fp16, "fp8": fp8}


def import_steadydancer():
    """Our convert/layout helpers (pure torch; no ComfyUI import needed for these two)."""
    pack = HERE.parent
    if str(pack) not in sys.path:
        sys.path.insert(0, str(pack))


def run_official(model, inp, shared):
    ref_x = torch.cat([inp["ref_lat"], torch.ones(4, 1, *inp["ref_lat"].shape[2:]), inp["ref_lat"]])
    ref_c = torch.cat([inp["pose_ref_lat"], torch.zeros(4, 1, *inp["ref_lat"].shape[2:]), inp["pose_ref_lat"]])
    with torch.no_grad():
        out = model(
            [inp["noise"]],
            t=inp["t"],
            context=[shared["context"]],
            seq_len=None,
            condition=inp["condition"],
            ref_x=ref_x,
            ref_c=ref_c,
            clip_fea_x=shared["clip_x"],
            clip_fea_c=shared["clip_c"],
            y=[inp["y"]],
        )[0]
    return out


def generate(source):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    md = load_official(source)
    shapes = official_shapes(md)
    weights = R.random_weights(shapes)
    shared = R.shared_inputs()
    arrays = {}
    meta = {
        "official_commit": OFFICIAL_COMMIT,
        "config": R.CONFIG,
        "weight_seed": R.WEIGHT_SEED,
        "cases": R.CASES,
        "timestep": R.TIMESTEP,
        "weights_sha256": R.fingerprint(weights),
        "shared_sha256": R.fingerprint(shared),
        "n_weights": len(weights),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    for vname, w in variants(weights).items():
        model = official_model(md, w)
        for case in R.CASES:
            inp = R.make_inputs(case)
            for k, v in inp.items():
                arrays[f"{case}/in/{k}"] = v.numpy()
            arrays[f"{case}/out/{vname}"] = run_official(model, inp, shared).float().numpy()
    return arrays, meta


def save(arrays, meta, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "parity.npz", meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    return out_dir / "parity.npz"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(HERE / "golden"))
    ap.add_argument("--source", default=str(default_source()))
    a = ap.parse_args(argv)
    arrays, meta = generate(a.source)
    p = save(arrays, meta, a.out)
    print(f"wrote {p} ({p.stat().st_size} bytes, {len(arrays)} arrays)")


if __name__ == "__main__":
    main()
