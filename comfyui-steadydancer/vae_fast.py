"""Wan 2.1 VAE encode / decode in temporal chunks: exact, faster, memory independent of length.

ComfyUI's ``VAE.encode`` / ``VAE.decode`` (comfy/sd.py at a125cd84) move the whole video to the
GPU and let ``WanVAE.encode`` / ``WanVAE.decode`` (comfy/ldm/wan/vae.py) loop over it there:
encode feeds the causal encoder frame 0, then 4-frame chunks, with a feature cache (the last
input frames of every causal conv); decode feeds the decoder one latent frame at a time; both
``torch.cat`` the growing output on the GPU. So VRAM grows with the length: the pixel video (in
or out) sits on the GPU whole, and the growing ``cat`` leaves the caching allocator with ever
larger blocks (issue #14: +45 % reserved from 81 to 481 frames).

Here the same loop runs with the same modules and the same cache, but one chunk at a time moves
to the GPU and each decoded chunk moves straight to ComfyUI's intermediate device, into an output
allocated once. Same calls on the same values in the same order: the results are bit for bit
those of ``vae.encode`` / ``vae.decode`` (tests/test_vae_fast.py). The encode's small pre-``conv1``
features (32 channels at 1/8 size) stay on the GPU and get ``conv1`` in one call, as in core.

Repeated input (issue #13). The encoder has a finite temporal receptive field and no other state
than its cache, so once a chunk's input equals the previous chunk's input AND every cache entry
it leaves is bitwise equal to the one it replaced, the encoder is at a fixed point: every later
chunk with that same input gives the same output bit for bit (the same deterministic computation
on the same tensors). The concat video (reference image, then ``length - 1`` grey frames) reaches
it after 30 latent frames for Wan 2.1's architecture (measured: the cache is the same from chunk
29 on), so its encode runs 30 chunks and repeats the last latent frame, and only when the check
passed at run time: otherwise (fewer latent frames, or a cache that never settles) it is the full
encode. Any other video with a repeated tail is checked the same way.

Switches (environment, read at each call; "0"/"false"/"off" turns one off):

* ``STEADYDANCER_VAE_CHUNKED`` (default on): the chunked paths here; off = ComfyUI's own
  ``vae.encode`` / ``vae.decode``.
* ``STEADYDANCER_VAE_REPEAT`` (default on): the fixed-point shortcut.
* ``STEADYDANCER_VAE_BATCH`` (default off): ``encode_many`` encodes same-shape videos as one batch
  (batch > 1 through the same loop; bench/vae_speed.py times it against separate encodes).

Any VAE that is not ComfyUI's Wan 2.1 ``WanVAE`` goes to ComfyUI's own methods; so does a chunked
call that runs out of GPU memory (core then tiles).
"""

import logging
import os
from typing import Callable, Sequence

import torch

import comfy.ldm.wan.vae as wan_vae
import comfy.model_management as mm
import comfy.utils

_log = logging.getLogger("steadydancer")

ENV_CHUNKED = "STEADYDANCER_VAE_CHUNKED"
ENV_REPEAT = "STEADYDANCER_VAE_REPEAT"
ENV_BATCH = "STEADYDANCER_VAE_BATCH"


def _flag(name: str, default: bool) -> bool:
    v = os.environ.get(name, "").strip().lower()
    if not v:
        return default
    return v not in ("0", "false", "no", "off")


def chunked_enabled() -> bool:
    return _flag(ENV_CHUNKED, True)


def repeat_enabled() -> bool:
    return _flag(ENV_REPEAT, True)


def batch_enabled() -> bool:
    return _flag(ENV_BATCH, False)


def is_wan21(vae) -> bool:
    return type(getattr(vae, "first_stage_model", None)) is wan_vae.WanVAE


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a is b or (a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b))
    return isinstance(a, str) and a == b


def _same_pixels(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal chunks; a sparse sample first, so that differing frames cost next to nothing."""
    if a is b:
        return True
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(a[..., ::16, ::16], b[..., ::16, ::16]) and torch.equal(a, b)


class _WatchedCache(list):
    """The encoder's ``feat_cache``; while watching, every new entry is compared bitwise with the one it replaces.

    vae.py replaces each entry once per chunk: ``feat_cache[i] = new`` (conv1, head, Resample),
    or ``feat_cache[i] = None`` inside ``CausalConv3d`` then ``feat_cache[i] = new`` (residual
    blocks) — the entry taken out is held until its successor arrives. After the first mismatch
    nothing more is held or compared.
    """

    def __init__(self, n: int):
        super().__init__([None] * n)
        self.watch = False
        self.equal = True
        self.compared = 0
        self._held = {}

    def start(self):
        self.watch, self.equal, self.compared, self._held = True, True, 0, {}

    def stop(self):
        self.watch, self._held = False, {}

    def entries(self) -> int:
        return sum(1 for v in self if v is not None)

    def __setitem__(self, idx, value):
        if self.watch and self.equal:
            old = list.__getitem__(self, idx)
            if value is None:
                self._held[idx] = old
            else:
                if old is None:
                    old = self._held.pop(idx, None)
                self.compared += 1
                self.equal = _same(old, value)
        list.__setitem__(self, idx, value)


def _layout(images: torch.Tensor) -> torch.Tensor:
    """IMAGE [T, H, W, C] or [B, T, H, W, C] → [B, C, T, H, W] as ``VAE.encode`` views it (no copy)."""
    x = images.movedim(-1, 1)
    return x.movedim(1, 0).unsqueeze(0) if x.ndim < 5 else x


def _chunk_bounds(t: int) -> list[tuple[int, int]]:
    """WanVAE.encode's chunks: frame 0, then 4 frames each (a tail of fewer than 4 is dropped, as there)."""
    return [(0, 1)] + [(1 + 4 * (i - 1), 1 + 4 * i) for i in range(1, 1 + (t - 1) // 4)]


def _encode_chunks(vae, n: int, chunk: Callable[[int], torch.Tensor], rest_equal: Callable[[int, torch.Tensor], bool], info: dict):
    """The loop of ``WanVAE.encode`` over ``chunk(i)`` ([B, C, t, H, W] pixels in [0, 1], on any device)."""
    model = vae.first_stage_model
    cache = _WatchedCache(wan_vae.count_conv3d(model.decoder))
    repeat = repeat_enabled()
    feats, prev = [], None
    info.update(chunks=n, encoded=0, repeated=0)
    pbar = comfy.utils.ProgressBar(n) if n > 8 else None
    for i in range(n):
        px = chunk(i)
        same_input = repeat and prev is not None and _same_pixels(prev, px)
        cache.start() if same_input else cache.stop()
        before = cache.entries()
        x = vae.process_input(px).to(vae.vae_dtype).to(vae.device)
        out = model.encoder(x, feat_cache=cache, feat_idx=[0])
        del x
        feats.append(out)
        info["encoded"] = i + 1
        if pbar:
            pbar.update(1)
        if same_input and cache.equal and cache.compared == before == cache.entries() and i + 1 < n and rest_equal(i, px):
            feats.extend([out] * (n - 1 - i))  # the fixed point: every later chunk gives this output
            info["repeated"] = n - 1 - i
            if pbar:
                pbar.update(n - 1 - i)
            break
        prev = px
    cache.stop()
    if info["repeated"]:
        _log.debug("steadydancer: VAE encode at its fixed point after %d of %d chunks (the rest repeated)", info["encoded"], n)
    # one cat as core's repeated ones (same memory format: conv1's kernel, and bits, follow it)
    mu = model.conv1(torch.cat(feats, 2)).chunk(2, dim=1)[0]
    if "first" in info:
        # latent frame 0 as a one-frame encode gives it: chunk 0 is frame 0 alone with an empty
        # cache, so its features are that encode's; conv1 then runs on them alone (T = 1), as there
        info["first"] = model.conv1(torch.cat(feats[:1], 2)).chunk(2, dim=1)[0].to(vae.output_device).float().contiguous()
    return mu.to(vae.output_device).float().contiguous()


def _encode_wan(vae, n: int, chunk, rest_equal, shape, info: dict) -> torch.Tensor:
    memory_used = vae.memory_used_encode(shape, vae.vae_dtype) * shape[0]
    mm.load_models_gpu([vae.patcher], memory_required=memory_used, force_full_load=vae.disable_offload)
    with torch.no_grad():
        return _encode_chunks(vae, n, chunk, rest_equal, info)


def _try(fn, fallback, what: str):
    oom = False
    try:
        return fn()
    except mm.OOM_EXCEPTION:
        oom = True  # fall back outside the except block, so the failed attempt's tensors can go
    if oom:
        _log.warning("steadydancer: out of memory in the chunked VAE %s; retrying with ComfyUI's own", what)
        mm.soft_empty_cache()
    return fallback()


def _with_first(info: dict, first: Callable[[], torch.Tensor]) -> None:
    """After a fallback encode: ``info["first"]`` (when asked for) from core's own one-frame encode."""
    if "first" in info and info["first"] is None:
        info["first"] = first()


def encode(vae, images: torch.Tensor, info: dict | None = None) -> torch.Tensor:
    """``vae.encode(images)``, bit for bit, chunked (IMAGE [T, H, W, C] or a batch [B, T, H, W, C]).

    ``info={"first": None}`` asks for ``vae.encode(images[:1])`` too, bit for bit, in ``info["first"]``
    at no extra encoder pass (the encoder sees frame 0 alone first).
    """
    info = {} if info is None else info
    if not chunked_enabled() or not is_wan21(vae):
        info.update(path="comfy")
        out = vae.encode(images)
        _with_first(info, lambda: vae.encode(images[..., :1, :, :, :]))
        return out
    vae.throw_exception_if_invalid()
    x = _layout(vae.vae_encode_crop_pixels(images))
    bounds = _chunk_bounds(x.shape[2])

    def rest_equal(i, px):
        return all(_same_pixels(x[:, :, a:b], px) for a, b in bounds[i + 1 :])

    info.update(path="chunked")
    out = _try(lambda: _encode_wan(vae, len(bounds), lambda i: x[:, :, bounds[i][0] : bounds[i][1]], rest_equal, x.shape, info), lambda: vae.encode(images), "encode")
    _with_first(info, lambda: vae.encode(images[..., :1, :, :, :]))
    return out


def encode_ref_then_fill(vae, ref: torch.Tensor, length: int, fill: float = 0.5, info: dict | None = None) -> torch.Tensor:
    """``vae.encode`` of [ref, fill × (length - 1)] (IMAGE ref [1, H, W, C]) without building that video.

    The fill chunks are one 4-frame tensor; the fixed-point shortcut applies after its check.
    ``info={"first": None}``: also ``vae.encode(ref[:1])``, bit for bit, in ``info["first"]``.
    """
    info = {} if info is None else info
    if not chunked_enabled() or not is_wan21(vae):
        video = torch.full((length,) + tuple(ref.shape[1:]), fill, dtype=ref.dtype, device=ref.device)
        video[:1] = ref[:1]
        info.update(path="comfy")
        out = vae.encode(video)
        _with_first(info, lambda: vae.encode(ref[:1]))
        return out
    vae.throw_exception_if_invalid()
    head = vae.vae_encode_crop_pixels(ref[:1])
    n = len(_chunk_bounds(length))
    grey = _layout(torch.full((4,) + tuple(head.shape[1:]), fill, dtype=head.dtype, device=head.device))
    first = _layout(head)
    shape = (1, first.shape[1], length) + tuple(first.shape[3:])

    def fallback():
        video = torch.full((length,) + tuple(ref.shape[1:]), fill, dtype=ref.dtype, device=ref.device)
        video[:1] = ref[:1]
        return vae.encode(video)

    info.update(path="chunked")
    out = _try(lambda: _encode_wan(vae, n, lambda i: first if i == 0 else grey, lambda i, px: True, shape, info), fallback, "encode")
    _with_first(info, lambda: vae.encode(ref[:1]))
    return out


def encode_many(vae, videos: Sequence[torch.Tensor], batch: bool | None = None, info: dict | None = None) -> list[torch.Tensor]:
    """Encode several IMAGE videos; with ``batch`` (default: ``STEADYDANCER_VAE_BATCH``) same-shape ones go as one batch.

    A batch is encoded per chunk ([B, C, 4, H, W] at a time). Its latents are NOT bitwise those of
    separate encodes (nor of core's ``vae.encode`` on the stacked video, whose chunks are strided
    views): the convolution kernels for batch B round differently, |Δ| up to ~6e-6 in float32 on the
    CPU (tests/test_vae_fast.py); bench/vae_speed.py reports it on the GPU.
    """
    info = {} if info is None else info
    batch = batch_enabled() if batch is None else batch
    shapes = {tuple(v.shape) for v in videos}
    if not batch or len(videos) < 2 or len(shapes) != 1 or not chunked_enabled() or not is_wan21(vae):
        info.update(batched=False)
        return [encode(vae, v) for v in videos]
    vae.throw_exception_if_invalid()
    vs = [vae.vae_encode_crop_pixels(v) for v in videos]
    bounds = _chunk_bounds(vs[0].shape[0])

    def chunk(i):  # the layout core's encode gives the stacked [B, T, H, W, C] video
        a, b = bounds[i]
        return _layout(torch.stack([v[a:b] for v in vs]))

    def rest_equal(i, px):
        return all(_same_pixels(chunk(j), px) for j in range(i + 1, len(bounds)))

    shape = (len(vs), vs[0].shape[-1], vs[0].shape[0]) + tuple(vs[0].shape[1:3])
    info.update(batched=True, path="chunked")
    out = _try(lambda: _encode_wan(vae, len(bounds), chunk, rest_equal, shape, info), lambda: vae.encode(torch.stack(list(videos))), "encode")
    return [out[i : i + 1] for i in range(out.shape[0])]


def _decode_wan(vae, samples: torch.Tensor, info: dict) -> torch.Tensor:
    memory_used = vae.memory_used_decode(samples.shape, vae.vae_dtype) * samples.shape[0]
    mm.load_models_gpu([vae.patcher], memory_required=memory_used, force_full_load=vae.disable_offload)
    model = vae.first_stage_model
    t = samples.shape[2]
    info.update(path="chunked", chunks=t)
    pbar = comfy.utils.ProgressBar(t) if t > 8 else None
    with torch.no_grad():
        z = model.conv2(samples.to(vae.vae_dtype).to(vae.device))
        cache = [None] * wan_vae.count_conv3d(model.decoder)
        pixels, at = None, 0
        for i in range(t):
            out = model.decoder(z[:, :, i : i + 1], feat_cache=cache, feat_idx=[0])
            out = vae.process_output(out.to(vae.output_device).float())
            if pixels is None:  # frame 0 decodes to 1 frame, every later latent frame to 4
                pixels = torch.empty(out.shape[:2] + (1 + 4 * (t - 1),) + out.shape[3:], device=vae.output_device)
            pixels[:, :, at : at + out.shape[2]] = out
            at += out.shape[2]
            if pbar:
                pbar.update(1)
        if at != pixels.shape[2]:
            pixels = pixels[:, :, :at]
    return pixels.movedim(1, -1)


def decode(vae, samples: torch.Tensor, info: dict | None = None) -> torch.Tensor:
    """``vae.decode(samples)``, bit for bit, one latent frame at a time to the intermediate device."""
    info = {} if info is None else info
    if not chunked_enabled() or not is_wan21(vae) or samples.ndim != 5:
        info.update(path="comfy")
        return vae.decode(samples)
    vae.throw_exception_if_invalid()
    return _try(lambda: _decode_wan(vae, samples, info), lambda: vae.decode(samples), "decode")
