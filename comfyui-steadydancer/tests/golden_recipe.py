"""Seed-derived recipe for the parity goldens: random weights and inputs (no official source needed).

The weights are too large to store (~4 M parameters), so the goldens keep this recipe plus a
SHA-256 of every generated tensor; tests regenerate and check the fingerprints first.
"""

import hashlib
import math

import torch

CONFIG = dict(dim=256, ffn_dim=512, num_heads=2, num_layers=2, in_dim=36, out_dim=16, text_dim=64, freq_dim=64, text_len=512)
WEIGHT_SEED = 20251128
# (latent frames T, latent h, latent w) = video frames 4(T-1)+1 at 8h × 8w pixels
CASES = {"t2_4x4": (2, 4, 4), "t2_6x8": (2, 6, 8), "t3_4x4": (3, 4, 4), "t3_6x8": (3, 6, 8)}
TEXT_TOKENS = 7
TIMESTEP = 731.0


def _gen(seed):
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def _seed_of(name, base):
    return base + int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def random_weights(shapes, seed=WEIGHT_SEED):
    """{name: shape} → {name: float32 tensor}; one generator per tensor, seeded by its name."""
    out = {}
    for name, shape in sorted(shapes.items()):
        g = _gen(_seed_of(name, seed))
        leaf = name.rsplit(".", 1)[-1]
        is_norm = any(p in name for p in ("norm", "bn1", "bn2"))
        if is_norm and leaf == "weight":
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2 and "modulation" not in name:
            fan_in = math.prod(shape[1:])
            t = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        else:
            t = 0.1 * torch.randn(shape, generator=g)
        out[name] = t.float()
    return out


def make_inputs(case):
    T, h, w = CASES[case]
    g = _gen(_seed_of(case, 7))
    lat = lambda c, t=T: torch.randn(c, t, h, w, generator=g)  # noqa: E731
    noise = lat(16)
    mask = torch.zeros(4, T, h, w)
    mask[:, 0] = 1.0
    y = torch.cat([mask, lat(16)])
    ref = lat(16, 1)
    pose_ref = lat(16, 1)
    return dict(noise=noise, y=y, condition=lat(16), ref_lat=ref, pose_ref_lat=pose_ref, t=torch.tensor([TIMESTEP]))


def shared_inputs():
    """Text context and the two CLIP feature sets, the same for every case."""
    g = _gen(99)
    return dict(context=torch.randn(TEXT_TOKENS, CONFIG["text_dim"], generator=g), clip_x=torch.randn(1, 257, 1280, generator=g), clip_c=torch.randn(1, 257, 1280, generator=g))


def fingerprint(tensors):
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()
