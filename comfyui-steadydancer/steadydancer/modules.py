"""SteadyDancer's pose modules, written against ComfyUI's ``operations`` (our implementation).

Behaviour follows the official definitions (MCG-NJU/SteadyDancer ``small_archs.py``,
``mobilenetv2_dcd.py``); parameter names match the official state dict so checkpoints load
unchanged. Sizes come from constructor arguments that the loader reads from the state dict.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

import comfy.model_management


def _cast(p, like):
    return comfy.model_management.cast_to(p, dtype=like.dtype, device=like.device)


class FactorConv3d(nn.Module):
    """(2+1)D convolution: depthwise k×k spatial conv (no bias) → SiLU → k_t×1×1 temporal conv."""

    def __init__(self, channels, out_channels, k_t=3, k_hw=3, dtype=None, device=None, operations=None):
        super().__init__()
        self.spatial = operations.Conv3d(channels, channels, (1, k_hw, k_hw), padding=(0, k_hw // 2, k_hw // 2), groups=channels, bias=False, dtype=dtype, device=device)
        self.temporal = operations.Conv3d(channels, out_channels, (k_t, 1, 1), padding=(k_t // 2, 0, 0), dtype=dtype, device=device)

    def forward(self, x):
        return self.temporal(F.silu(self.spatial(x)))


def hard_sigmoid(x):
    # relu6(x + 3) / 3, as the official Hsigmoid (note: /3, not /6)
    return F.relu6(x + 3.0) / 3.0


class _SqueezeGate(nn.Module):
    """x * hard_sigmoid(fc(x)); the official SEModule_small (key: ``fc.0.weight``)."""

    def __init__(self, n, dtype=None, device=None, operations=None):
        super().__init__()
        self.fc = nn.Sequential(operations.Linear(n, n, bias=False, dtype=dtype, device=device))

    def forward(self, x):
        return x * hard_sigmoid(self.fc(x))


class DynamicConv(nn.Module):
    """Dynamic channel-fusion convolution (the official ``DYModule``).

    out = conv_p(bn2(phi(x) @ bn1(conv_q(x))) + bn1(conv_q(x))) + scale(x) * conv(x), where
    phi (dim×dim) and scale (per output channel) come from pooled input statistics.
    ``dim``, ``squeeze`` and ``mul`` (pool grid = 1 or 2) are read from the weights.
    """

    def __init__(self, inp, oup, dim, squeeze, mul, dtype=None, device=None, operations=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.mul, self.dim = mul, dim
        self.pool = 2 if mul == 4 else 1
        self.conv = operations.Conv2d(inp, oup, 1, bias=False, **kw)
        self.conv_q = operations.Conv2d(inp, dim, 1, bias=False, **kw)
        self.fc = nn.Sequential(operations.Linear(inp * mul, squeeze, bias=False, **kw), _SqueezeGate(squeeze, operations=operations, **kw))
        self.fc_phi = operations.Linear(squeeze, dim * dim, bias=False, **kw)
        self.fc_scale = operations.Linear(squeeze, oup, bias=False, **kw)
        self.conv_p = operations.Conv2d(dim, oup, 1, bias=False, **kw)
        self.bn1 = operations.GroupNorm(4, dim, **kw)
        self.bn2 = operations.GroupNorm(4, dim, **kw)

    def forward(self, x):
        b, c, h, w = x.shape
        r = self.conv(x)
        stats = F.adaptive_avg_pool2d(x, self.pool).reshape(b, c * self.mul)
        y = self.fc(stats)
        phi = self.fc_phi(y).view(b, self.dim, self.dim)
        scale = hard_sigmoid(self.fc_scale(y)).view(b, -1, 1, 1)
        q = self.bn1(self.conv_q(x)).view(b, self.dim, h * w)
        q = self.bn2(torch.matmul(phi, q)) + q
        return self.conv_p(q.view(b, self.dim, h, w)) + scale * r


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of [N, C, H, W] (biased variance, eps 1e-5); weights [1, C, 1, 1]."""

    def __init__(self, c, eps=1e-5, dtype=None, device=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(1, c, 1, 1, dtype=dtype, device=device))
        self.bias = nn.Parameter(torch.empty(1, c, 1, 1, dtype=dtype, device=device))

    def forward(self, x):
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * _cast(self.weight, x) + _cast(self.bias, x)


class _MHAWeights(nn.Module):
    """Holds nn.MultiheadAttention's parameter names (in_proj_weight/bias, out_proj)."""

    def __init__(self, hidden, dtype=None, device=None, operations=None):
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden, hidden, dtype=dtype, device=device))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * hidden, dtype=dtype, device=device))
        self.out_proj = operations.Linear(hidden, hidden, dtype=dtype, device=device)


class PoseNoiseAlign(nn.Module):
    """Frame-wise attention alignment of the fused pose to the noisy latent (official PoseRefNetNoBNV3).

    The official module feeds [frames, pixels, hidden] into a sequence-first nn.MultiheadAttention,
    so each pixel attends over the *frames* (query: noise, key/value: pose). We do exactly that, per
    sample (the official always runs one sample; batching samples must not mix them).
    """

    def __init__(self, c_pose, c_noise, hidden, heads=8, dtype=None, device=None, operations=None):
        super().__init__()
        kw = dict(dtype=dtype, device=device)
        self.heads = heads
        self.proj_p = operations.Conv2d(c_pose, hidden, 1, **kw)
        self.proj_r = operations.Conv2d(c_noise, hidden, 1, **kw)
        self.proj_p_back = operations.Conv2d(hidden, c_pose, 1, **kw)
        self.cross_attn = _MHAWeights(hidden, operations=operations, **kw)
        self.ffn_pose = nn.Sequential(operations.Conv2d(hidden, hidden, 1, **kw), nn.SiLU(), operations.Conv2d(hidden, hidden, 1, **kw))
        self.norm1 = ChannelLayerNorm(hidden, **kw)
        self.norm2 = ChannelLayerNorm(hidden, **kw)

    def forward(self, pose, noise):
        b, _, t, h, w = pose.shape
        frames = lambda v: v.movedim(2, 1).reshape(b * t, v.shape[1], h, w)  # noqa: E731
        p = self.proj_p(frames(pose))
        r = self.proj_r(frames(noise))
        hid = p.shape[1]
        # [b*t, hid, h, w] -> [b, h*w, t, hid]: a sequence of t frames per pixel
        seq = lambda v: v.reshape(b, t, hid, h * w).permute(0, 3, 1, 2)  # noqa: E731
        wq, wk, wv = _cast(self.cross_attn.in_proj_weight, p).chunk(3)
        bq, bk, bv = _cast(self.cross_attn.in_proj_bias, p).chunk(3)
        q = F.linear(seq(r), wq, bq)
        k = F.linear(seq(p), wk, bk)
        v = F.linear(seq(p), wv, bv)
        split = lambda z: z.unflatten(-1, (self.heads, hid // self.heads)).transpose(-2, -3)  # noqa: E731
        a = F.scaled_dot_product_attention(split(q), split(k), split(v))
        a = self.cross_attn.out_proj(a.transpose(-2, -3).flatten(-2))
        out = a.permute(0, 2, 3, 1).reshape(b * t, hid, h, w)
        out = self.norm1(out)
        out = self.norm2(out + self.ffn_pose(out))
        out = self.proj_p_back(out)
        return out.reshape(b, t, -1, h, w).movedim(1, 2)
