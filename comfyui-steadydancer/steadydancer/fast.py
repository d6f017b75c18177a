"""The fast path of the 40 Wan blocks: attention kernel per GPU, fp8 linears, one compiled block.

Three independent choices, resolved once per model (``resolve``) and carried to the forward in
``transformer_options["steadydancer_speed"]``:

- attention (self-attention over the video tokens, where ~half of the FLOPs are):
  ``sdpa`` (torch's scaled_dot_product_attention; runs everywhere), ``sage`` (SageAttention2:
  int8 QK, fp8 PV; where its CUDA kernels are built for this GPU), ``fa3`` (FlashAttention-3
  bf16, Hopper only, from the ``fa3_fwd`` wheel) and ``fa3_fp8`` (FlashAttention-3 on fp8 q/k/v
  with per-head scales; k and v are smoothed first: the mean token of k is taken out, which
  softmax ignores, and the mean token of v is taken out and added back to the output, which is
  exact because each softmax row sums to 1). Cross-attention (257 + 512 keys, ~1 % of the time)
  uses the bf16 kernel of the same family (``fa3`` for both FA3 choices, SDPA otherwise).
- fp8 matmul for the blocks' Linear layers whose weights are stored in fp8 e4m3 with a scale
  (the scaled-fp8 file): activations are quantised per row (``rowwise``: one scale per token)
  or per tensor (``tensorwise``) right before ``torch._scaled_mm``; the weights and their scale
  are the file's. Compiled, the quantisation fuses into the op that made the activation.
- compile: the block function below is compiled once by ``torch.compile`` and reused by every
  block (its parameters are inputs of the graph, not constants), so the 40 blocks share one
  graph. A compile failure logs one line and the run goes on eagerly.

``auto`` picks the fastest choice measured on this GPU family that is available here (see
bench/steadydancer-forward.md); an explicit choice that cannot run here falls back along the
same order with one log line. ``ATTENTION_BACKEND`` (the image's start.sh variable) is what
``auto`` means for attention when it names one of ours.
"""

import functools
import logging
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from comfy.ldm.flux.math import apply_rope1
from comfy.ldm.wan.model import repeat_e

log = logging.getLogger("steadydancer")

ATTENTION_CHOICES = ("auto", "sdpa", "sage", "fa3", "fa3_fp8")
FP8_CHOICES = ("auto", "off", "rowwise", "tensorwise")
COMPILE_CHOICES = ("auto", "on", "off")
# auto on Hopper (sm 9.0), fastest first; and on other CUDA GPUs. Whole forward at 35,880 tokens on
# an H200 with fp8 linears and compile (bench/steadydancer-speed.md): fa3_fp8 2.265 s, fa3 2.598,
# sdpa 2.920; SageAttention2 (33.7 ms a layer in issue #13, between fa3_fp8 and fa3) not re-measured.
ORDER_SM90 = ("fa3_fp8", "sage", "fa3", "sdpa")
ORDER_OTHER = ("sage", "sdpa")
FALLBACK = {"fa3_fp8": ("fa3", "sage", "sdpa"), "fa3": ("sdpa",), "sage": ("fa3", "sdpa"), "sdpa": ()}
# ATTENTION_BACKEND values (docker/start.sh) → our attention choice; others mean auto.
ENV_ATTENTION = {"sage": "sage", "fa3": "fa3", "flash": "fa3", "fa3_fp8": "fa3_fp8", "pytorch": "sdpa", "sdpa": "sdpa"}
FP8_MAX = 448.0  # largest finite float8_e4m3fn
# "fast accumulation" for fp8 matmuls (partial sums kept in the tensor cores' own precision, not
# promoted to fp32 per block of K): measured on the H200 at 35,880 tokens, 2.265 → 2.187 s per
# forward with the same forward / 4-step-sample error against ComfyUI's bf16 path (0.0191 /
# 0.0165 vs 0.0191 / 0.0164). On by default; STEADYDANCER_FP8_FAST_ACCUM=0 turns it off.
FP8_FAST_ACCUM = os.environ.get("STEADYDANCER_FP8_FAST_ACCUM", "1") != "0"


@dataclass(frozen=True)
class Kernels:
    """What can run here: CUDA capability (None without CUDA) and which kernels import."""

    capability: tuple = None
    sage: str = None  # None when importable, else why not
    fa3: str = None
    triton: str = None

    def missing(self, name):
        if name == "sdpa":
            return None
        if self.capability is None:
            return "no CUDA GPU"
        if name in ("fa3", "fa3_fp8"):
            if self.capability[0] != 9:
                return f"FlashAttention-3 runs on Hopper (sm 9.0) only, this GPU is sm {self.capability[0]}.{self.capability[1]}"
            return self.fa3
        return self.sage


def _import_error(module):
    try:
        __import__(module)
        return None
    except Exception as e:  # an ImportError, or a broken build raising something else
        return f"{module} does not import ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"


@functools.lru_cache(maxsize=1)
def probe():
    cap = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
    return Kernels(capability=cap, sage=_import_error("sageattention"), fa3=_import_error("fa3_fwd_interface"), triton=_import_error("triton"))


def _check(name, value, choices):
    if value not in choices:
        raise ValueError(f"SteadyDancer speed: {name} must be one of {', '.join(choices)}, got {value!r}")


def resolve_attention(requested, kernels, env=None):
    """(choice, note): the attention that will run, and why, for ``requested`` on ``kernels``."""
    _check("attention", requested, ATTENTION_CHOICES)
    env = os.environ if env is None else env
    if requested == "auto":
        named = ENV_ATTENTION.get(env.get("ATTENTION_BACKEND", "").strip().lower())
        if named is not None:
            requested, why = named, "ATTENTION_BACKEND"
        else:
            order = ORDER_SM90 if kernels.capability is not None and kernels.capability[0] == 9 else ORDER_OTHER
            for name in order:
                if kernels.missing(name) is None:
                    return name, "auto"
            return "sdpa", "auto"
    else:
        why = "asked"
    reason = kernels.missing(requested)
    if reason is None:
        return requested, why
    for alt in FALLBACK[requested]:
        if kernels.missing(alt) is None:
            return alt, f"{requested} unavailable: {reason}"
    return "sdpa", f"{requested} unavailable: {reason}"


def resolve_fp8(requested, kernels):
    _check("fp8_matmul", requested, FP8_CHOICES)
    if requested == "off":
        return "off", "asked"
    if requested == "auto":
        if kernels.capability is None or kernels.capability < (8, 9):
            return "off", "auto: fp8 matmul needs a CUDA GPU of sm 8.9 or newer"
        return "rowwise", "auto"
    if requested == "rowwise" and kernels.capability is None:
        return "tensorwise", "rowwise unavailable: torch's CPU _scaled_mm takes per-tensor scales only"
    if kernels.capability is not None and kernels.capability < (8, 9):
        return "off", f"{requested} unavailable: sm {kernels.capability[0]}.{kernels.capability[1]} has no fp8 matmul"
    return requested, "asked"


def resolve_compile(requested, kernels):
    _check("compile", requested, COMPILE_CHOICES)
    if requested == "off":
        return False, "asked"
    if requested == "auto" and kernels.capability is None:
        return False, "auto: compile only on CUDA"
    if kernels.triton is not None and kernels.capability is not None:
        return False, f"compile unavailable: {kernels.triton}"
    return True, "auto" if requested == "auto" else "asked"


@dataclass(frozen=True)
class Speed:
    attention: str = "sdpa"
    fp8: str = "off"
    compile: bool = False

    def as_options(self):
        return asdict(self)


def resolve(attention="auto", fp8_matmul="auto", compile="auto", kernels=None, env=None):
    """A ``Speed`` for this machine; each fallback or auto pick is logged in one line."""
    kernels = probe() if kernels is None else kernels
    att, att_why = resolve_attention(attention, kernels, env)
    fp8, fp8_why = resolve_fp8(fp8_matmul, kernels)
    comp, comp_why = resolve_compile(compile, kernels)
    for what, got, why in (("attention", att, att_why), ("fp8 matmul", fp8, fp8_why), ("compile", comp, comp_why)):
        if "unavailable" in why:
            log.warning("SteadyDancer: %s falls back to %s (%s)", what, got, why.split(": ", 1)[1])
    log.info("SteadyDancer speed: attention=%s (%s), fp8 matmul=%s (%s), compile=%s (%s)", att, att_why, fp8, fp8_why, comp, comp_why)
    return Speed(att, fp8, comp)


def compute_dtype_for(speed, device):
    """The compute dtype the fast kernels need: bf16 (FA3 has no fp16 kernels; row-wise fp8
    matmuls write bf16); None when any dtype will do."""
    if device is not None and torch.device(device).type == "cuda" and (speed.attention in ("fa3", "fa3_fp8") or speed.fp8 == "rowwise"):
        return torch.bfloat16
    return None


# --- fp8 linear ------------------------------------------------------------------------------
def quantize_activation(x2, mode):
    """[M, K] activation → (fp8 e4m3 tensor, float32 scale): scale [M, 1] per row or [] per tensor;
    x ≈ q.float() * scale. A zero row gets scale 1/448-of-tiny instead of a division by zero."""
    a = x2.abs()
    amax = a.amax(dim=1, keepdim=True) if mode == "rowwise" else a.amax()
    scale = amax.float().clamp(min=1e-12) / FP8_MAX
    q = (x2.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale


def fp8_linear(x, weight, weight_scale, bias, mode):
    """y = x @ (weight·weight_scale)ᵀ + bias with fp8 operands; ``weight`` [N, K] e4m3 and its
    per-tensor (or per-output-channel, [N]) float scale as stored in the file."""
    n, k = weight.shape
    x2 = x.reshape(-1, k)
    q, sa = quantize_activation(x2, mode)
    sw = weight_scale.to(device=x.device, dtype=torch.float32)
    if mode == "rowwise":
        sb = (sw.reshape(1, 1).expand(1, n) if sw.numel() == 1 else sw.reshape(1, n)).contiguous()
        out_dtype = torch.bfloat16  # the row-wise kernel writes bf16 only
    else:
        if sw.numel() != 1:
            raise ValueError("tensorwise fp8 matmul needs a per-tensor weight scale")
        sb = sw.reshape(())
        out_dtype = x.dtype
    b = None if bias is None else bias.to(device=x.device, dtype=out_dtype)
    y = torch._scaled_mm(q, weight.t(), scale_a=sa, scale_b=sb, bias=b, out_dtype=out_dtype, use_fast_accum=FP8_FAST_ACCUM)
    if isinstance(y, tuple):
        y = y[0]
    return y.to(x.dtype).reshape(*x.shape[:-1], n)


def _fp8_ready(mod, x):
    w = getattr(mod, "weight", None)
    sw = getattr(mod, "scale_weight", None)
    return (
        w is not None
        and w.dtype == torch.float8_e4m3fn
        and w.device == x.device
        and sw is not None
        and (sw.numel() == 1 or sw.numel() == w.shape[0])
        and getattr(mod, "scale_input", None) is None
        and not getattr(mod, "weight_function", None)
        and not getattr(mod, "bias_function", None)
    )


def linear(mod, x, fp8):
    """One of the block's Linear layers: fp8 matmul where its weight is fp8 on this device (no
    on-the-fly patches), else the layer's own forward (ComfyUI's cast / LoRA logic)."""
    if fp8 != "off" and _fp8_ready(mod, x):
        return fp8_linear(x, mod.weight, mod.scale_weight, mod.bias, fp8)
    return mod(x)


# --- attention -------------------------------------------------------------------------------
def attention_sdpa(q, k, v):
    """q, k, v [B, S, H, D] → [B, S, H·D]."""
    b, s, h, d = q.shape
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return o.transpose(1, 2).reshape(b, s, h * d)


def smooth_quantize_fp8(q, k, v):
    """Per-(batch, head) fp8 e4m3 q/k/v and their descales for FA3 fp8, with k and v smoothed.
    Returns (q8, k8, v8, dq, dk, dv, v_mean): attention(q, k, v) = fa3(q8, k8, v8) + v_mean."""
    k = k - k.mean(dim=1, keepdim=True)
    v_mean = v.mean(dim=1, keepdim=True)
    v = v - v_mean

    def quant(t):
        scale = t.abs().amax(dim=(1, 3)).float().clamp(min=1e-12) / FP8_MAX  # [B, H]
        return (t.float() / scale[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), scale

    (q8, dq), (k8, dk), (v8, dv) = quant(q), quant(k), quant(v)
    return q8, k8, v8, dq, dk, dv, v_mean


_OPS = {}


def _kernel_ops():
    """Custom torch ops around the external kernels, so that torch.compile keeps them whole
    (opaque calls with a known output shape) instead of tracing into their Python wrappers."""
    if _OPS:
        return _OPS
    lib = "steadydancer"

    @torch.library.custom_op(f"{lib}::sage", mutates_args=())
    def sage(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        from sageattention import sageattn

        return sageattn(q, k, v, tensor_layout="NHD", is_causal=False)

    @torch.library.custom_op(f"{lib}::fa3", mutates_args=())
    def fa3(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        from fa3_fwd_interface import flash_attn_func

        o = flash_attn_func(q, k, v)
        return o[0] if isinstance(o, tuple) else o

    @torch.library.custom_op(f"{lib}::fa3_fp8", mutates_args=())
    def fa3_fp8(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dq: torch.Tensor, dk: torch.Tensor, dv: torch.Tensor) -> torch.Tensor:
        from fa3_fwd_interface import flash_attn_func

        o = flash_attn_func(q, k, v, q_descale=dq, k_descale=dk, v_descale=dv)
        return o[0] if isinstance(o, tuple) else o

    for op in (sage, fa3):
        op.register_fake(lambda q, k, v: q.new_empty(q.shape))
    fa3_fp8.register_fake(lambda q, k, v, dq, dk, dv: q.new_empty(q.shape, dtype=torch.bfloat16))
    _OPS.update(sage=sage, fa3=fa3, fa3_fp8=fa3_fp8)
    return _OPS


def attention(q, k, v, backend):
    """q, k, v [B, S, H, D] → [B, S, H·D] with the named kernel (same dtype as q)."""
    b, s, h, d = q.shape
    if backend == "sdpa":
        return attention_sdpa(q, k, v)
    ops = _kernel_ops()
    dtype = q.dtype
    if backend == "fa3_fp8":
        q8, k8, v8, dq, dk, dv, v_mean = smooth_quantize_fp8(q, k, v)
        o = ops["fa3_fp8"](q8, k8, v8, dq, dk, dv) + v_mean
    else:
        cast = (lambda t: t.to(torch.bfloat16)) if backend == "fa3" and dtype != torch.bfloat16 else (lambda t: t)  # noqa: E731
        o = ops[backend](cast(q), cast(k), cast(v))
    return o.to(dtype).reshape(b, s, h * d)


def cross_backend(backend):
    return "fa3" if backend in ("fa3", "fa3_fp8") else "sdpa"


# --- the block -------------------------------------------------------------------------------
def block_forward(blk, x, e, freqs, context, context_img_len, attn, fp8):
    """ComfyUI's ``WanAttentionBlock.forward`` (i2v cross-attention), with our linears and
    attention. Same math, same order of operations as ComfyUI's block."""
    mod = blk.modulation.to(dtype=x.dtype, device=x.device)
    e = (mod + e).chunk(6, dim=1) if e.ndim < 4 else (mod.unsqueeze(0) + e).unbind(2)
    sa, ca = blk.self_attn, blk.cross_attn
    b, s = x.shape[:2]
    n, d = sa.num_heads, sa.head_dim

    xin = torch.addcmul(repeat_e(e[0], x), blk.norm1(x), 1 + repeat_e(e[1], x))
    q = apply_rope1(sa.norm_q(linear(sa.q, xin, fp8)).view(b, s, n, d), freqs)
    k = apply_rope1(sa.norm_k(linear(sa.k, xin, fp8)).view(b, s, n, d), freqs)
    v = linear(sa.v, xin, fp8).view(b, s, n, d)
    y = linear(sa.o, attention(q, k, v, attn), fp8)
    x = torch.addcmul(x, y, repeat_e(e[2], x))

    xc = blk.norm3(x)
    ctx_img, ctx = context[:, :context_img_len], context[:, context_img_len:]
    heads = lambda t: t.view(t.shape[0], t.shape[1], n, d)  # noqa: E731
    q = heads(ca.norm_q(linear(ca.q, xc, fp8)))
    k = heads(ca.norm_k(linear(ca.k, ctx, fp8)))
    v = heads(linear(ca.v, ctx, fp8))
    k_img = heads(ca.norm_k_img(linear(ca.k_img, ctx_img, fp8)))
    v_img = heads(linear(ca.v_img, ctx_img, fp8))
    cb = cross_backend(attn)
    x = x + linear(ca.o, attention(q, k, v, cb) + attention(q, k_img, v_img, cb), fp8)

    f0, f2 = blk.ffn[0], blk.ffn[2]
    hid = F.gelu(linear(f0, torch.addcmul(repeat_e(e[3], x), blk.norm2(x), 1 + repeat_e(e[4], x)), fp8), approximate="tanh")
    return torch.addcmul(x, linear(f2, hid, fp8), repeat_e(e[5], x))


_COMPILED = {}
_COMPILE_BROKEN = []


def _compiled_block():
    if "block" not in _COMPILED:
        import torch._dynamo

        # the 40 blocks are one graph; headroom for a few shapes (sizes, batch) before a fall back
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        _COMPILED["block"] = torch.compile(block_forward, dynamic=False)
    return _COMPILED["block"]


def block_runner(speed):
    """A function(block, x, e, freqs, context, context_img_len) for the model's block loop."""
    if isinstance(speed, dict):
        speed = Speed(**speed)
    if speed.attention != "sdpa":
        _kernel_ops()  # register the custom ops eagerly, never while dynamo traces
    fn = block_forward
    if speed.compile and not _COMPILE_BROKEN:
        fn = _compiled_block()

    def run(blk, x, e, freqs, context, context_img_len):
        if fn is not block_forward and not _COMPILE_BROKEN:
            try:
                return fn(blk, x, e, freqs, context, context_img_len, speed.attention, speed.fp8)
            except Exception as err:  # a compile (or compiled-kernel) failure: once, then eager
                if isinstance(err, (torch.cuda.OutOfMemoryError, KeyboardInterrupt)):
                    raise
                _COMPILE_BROKEN.append(repr(err))
                root = err
                while (getattr(root, "inner_exception", None) or root.__cause__) is not None:
                    root = getattr(root, "inner_exception", None) or root.__cause__  # dynamo wraps the cause
                log.warning("SteadyDancer: torch.compile of the block failed (%s: %s); running eagerly", type(root).__name__, str(root).splitlines()[0] if str(root) else "")
        return block_forward(blk, x, e, freqs, context, context_img_len, speed.attention, speed.fp8)

    return run


TRANSFORMER_OPTIONS_KEY = "steadydancer_speed"


def apply(patcher, speed):
    """Put ``speed`` on a ModelPatcher (in place) for the model's forward to read."""
    to = patcher.model_options.setdefault("transformer_options", {})
    to[TRANSFORMER_OPTIONS_KEY] = speed.as_options()
    patcher.steadydancer_speed = speed
    return patcher
