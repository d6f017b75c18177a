"""The official SteadyDancer sampler for ComfyUI: flow-matching UniPC (bh2, data prediction).

The official code (``wan/image2video_dancer.py`` with ``wan/utils/fm_solvers_unipc.py``,
``FlowUniPCMultistepScheduler(shift=1)`` then ``set_timesteps(steps, shift=shift)``) samples a
rectified-flow model ``x_s = (1 - s) x0 + s noise`` like this:

* schedule: ``u = linspace(0.999, 0, steps + 1)[:-1]`` (0.999 is the top of its 1000-step
  training table, read back from float32), shifted ``s = shift u / (1 + (shift - 1) u)`` in
  float64; the solver uses ``s`` rounded to float32 with a final 0, the model is called at the
  integer timesteps ``int(s * 1000)`` (truncated, from the float64 ``s``). The first step runs on
  pure noise.
* every step: ``x0 = x - s_i v`` (``v`` the guided velocity at the integer timestep); for
  ``i > 0`` a UniC corrector first refines ``x`` with the new ``x0`` (no extra model call), then a
  UniP predictor moves to ``s_{i+1}``. Both work in ``lambda = log((1 - s) / s)`` with the B(h) =
  ``expm1(-h)`` ("bh2") weights; order 2, lowered to 1 on the first step and on the last one, so
  the last step returns its ``x0``.

ComfyUI's ``uni_pc_bh2`` is a different method: it maps sigmas to a variance-exploding
log-SNR (``lambda = -log sigma``), so from the same noise it lands elsewhere (the test measures it).

Here: ``flow_unipc_bh2`` (a k-diffusion style sampler, registered in ComfyUI's sampler lists so
KSampler, KSamplerSelect and every core sampling node can pick it) and the scheduler
``flow_unipc_official`` (the official float32 sigmas). Any flow model (Wan's
``ModelSamplingDiscreteFlow`` with ``ModelSamplingSD3``'s shift) works; others get an error.

ComfyUI calls a model with one sigma that serves both as its timestep (``sigma * multiplier``)
and in ``x0 = x - sigma v``. The official loop uses two numbers, so the sampler calls the model at
``sigma_t = t / multiplier`` (the integer timestep ``t``) and rescales the velocity part of the
result to the solver sigma: ``x0 = x - (s / sigma_t) (x - denoised)``. Integer timesteps come
from the official schedule when the sigmas are exactly it (float32 cannot always tell which
side of an integer the float64 value was on); for any other sigmas they are ``floor(s * 1000)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SAMPLER_NAME = "flow_unipc_bh2"
SCHEDULER_NAME = "flow_unipc_official"
# The official scheduler's top sigma: 1 - 1/1000 stored in a float32 tensor and read back.
OFFICIAL_SIGMA_MAX = float(np.float32(0.999))
ORDER = 2


class FlowModelRequired(TypeError):
    pass


def _flow_params(model_sampling) -> tuple[float, float]:
    """(shift, multiplier) of a flow-matching model_sampling, or a clear error."""
    import comfy.model_sampling as ms_mod

    if not (isinstance(model_sampling, ms_mod.CONST) and hasattr(model_sampling, "shift") and hasattr(model_sampling, "multiplier")):
        raise FlowModelRequired(
            f"{SAMPLER_NAME} / {SCHEDULER_NAME} need a flow-matching model (Wan: ModelSamplingDiscreteFlow, e.g. after ModelSamplingSD3); this model samples with {type(model_sampling).__name__}"
        )
    return float(model_sampling.shift), float(model_sampling.multiplier)


def official_schedule(steps: int, shift: float, multiplier: float = 1000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``set_timesteps``: (float32 sigmas [steps + 1] ending in 0, int64 timesteps [steps])."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"{SCHEDULER_NAME}: steps must be a positive integer, got {steps!r}")
    if not math.isfinite(shift) or shift <= 0:
        raise ValueError(f"{SCHEDULER_NAME}: shift must be a positive number, got {shift!r}")
    u = np.linspace(OFFICIAL_SIGMA_MAX, 0.0, int(steps) + 1)[:-1]
    s = shift * u / (1.0 + (shift - 1.0) * u)  # float64, as upstream
    timesteps = torch.from_numpy(s * multiplier).to(torch.int64)  # truncation toward 0, as upstream
    sigmas = torch.from_numpy(np.append(s, 0.0).astype(np.float32))
    return sigmas, timesteps


def scheduler(model_sampling, steps: int) -> torch.Tensor:
    """ComfyUI scheduler handler (``use_ms``): the official sigmas for this model's shift."""
    shift, multiplier = _flow_params(model_sampling)
    return official_schedule(steps, shift, multiplier)[0]


def integer_timesteps(sigmas: torch.Tensor, shift: float, multiplier: float) -> torch.Tensor:
    """The model timesteps for the non-final sigmas (see the module docstring)."""
    s = sigmas.detach().float().cpu()
    n = s.numel() - 1
    official, ts = official_schedule(n, shift, multiplier)
    if torch.equal(s, official):
        return ts
    return torch.floor(s[:-1].double() * multiplier).to(torch.int64)


def _sigma_for_timestep(t: int, model_sampling, like: torch.Tensor) -> torch.Tensor:
    """A float32 sigma that ``model_sampling.timestep`` maps to exactly ``t`` (if one is adjacent)."""
    base = torch.tensor(t / float(model_sampling.multiplier), dtype=torch.float32)
    for cand in (base, torch.nextafter(base, torch.tensor(2.0)), torch.nextafter(base, torch.tensor(-1.0))):
        if float(model_sampling.timestep(cand)) == float(t):
            return cand.to(like.device)
    return base.to(like.device)


def _lam(s: float) -> float:
    """Flow log-SNR: log(alpha / sigma) with alpha = 1 - sigma (inf at sigma 0)."""
    return math.inf if s == 0.0 else math.log1p(-s) - math.log(s)


def _unipc_update(x, s_from, s_to, m_cur, history, order, corrector_m=None):
    """One UniPC update from ``s_from`` to ``s_to`` in data prediction with B(h) = expm1(-h).

    ``m_cur`` is the x0 at ``s_from``; ``history`` the earlier (sigma, x0) pairs, newest last,
    used at order 2 (``ORDER``). Without ``corrector_m`` this is the predictor UniP; with it (the
    x0 at ``s_to``, evaluated on the predicted sample) the corrector UniC of the same order.
    """
    if s_to == 0.0:  # the last step: lambda = inf, e^-h = 0
        if corrector_m is not None:
            raise ValueError("no corrector onto sigma 0")
        return m_cur.clone()
    lam_from, lam_to = _lam(s_from), _lam(s_to)
    h = lam_to - lam_from
    hh = -h
    phi1 = math.expm1(hh)  # e^{-h} - 1
    b_h = phi1  # bh2
    alpha_to = 1.0 - s_to
    base = (s_to / s_from) * x - (alpha_to * phi1) * m_cur
    # ratios r_k and scaled differences D_k of the older x0s
    rks, d1s = [], []
    for k in range(1, order):
        s_k, m_k = history[-k]
        r = (_lam(s_k) - lam_from) / h
        rks.append(r)
        d1s.append((m_k - m_cur) / r)
    if corrector_m is None:  # UniP: order 1 is DPM-Solver-1, order 2 weighs D_1 by 1/2
        return base if order == 1 else base - (alpha_to * b_h * 0.5) * d1s[0]
    rhos = [0.5] if order == 1 else _rhos(rks + [1.0], hh, b_h, order)
    res = sum(rho * d for rho, d in zip(rhos[:-1], d1s)) if d1s else 0.0
    return base - (alpha_to * b_h) * (res + rhos[-1] * (corrector_m - m_cur))


def _rhos(rks, hh, b_h, p):
    """The corrector weights: solve sum_k rho_k r_k^(i-1) = i! hh phi_{i+1}(hh) / B(h), i = 1..p, with
    phi_1(z) = (e^z - 1) / z, phi_{i+1}(z) = (phi_i(z) - 1/i!) / z and hh = -h."""
    rows, rhs = [], []
    phi_k = math.expm1(hh) / hh - 1.0
    fact = 1
    for i in range(1, p + 1):
        rows.append([r ** (i - 1) for r in rks[:p]])
        rhs.append(phi_k * fact / b_h)
        fact *= i + 1
        phi_k = phi_k / hh - 1.0 / fact
    sol = torch.linalg.solve(torch.tensor(rows, dtype=torch.float64), torch.tensor(rhs, dtype=torch.float64))
    return sol.tolist()


def _model_sampling(model):
    """model_sampling from the sampler's ``model`` (ComfyUI's KSamplerX0Inpaint → guider → BaseModel)."""
    inner = getattr(model, "inner_model", None)
    inner = getattr(inner, "inner_model", None)
    ms = getattr(inner, "model_sampling", None)
    if ms is None:
        raise FlowModelRequired(f"{SAMPLER_NAME}: cannot find the model's model_sampling; use it through ComfyUI's samplers (KSampler, SamplerCustom, ...)")
    return ms


@torch.no_grad()
def sample_flow_unipc(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """k-diffusion style entry point (``sample_<name>``) used through ComfyUI's KSAMPLER."""
    from tqdm.auto import trange

    extra_args = {} if extra_args is None else extra_args
    ms = _model_sampling(model)
    shift, multiplier = _flow_params(ms)
    n = len(sigmas) - 1
    if n < 1:
        return x
    sig = [float(v) for v in sigmas.detach().float().cpu()]
    if any(b >= a for a, b in zip(sig, sig[1:])):
        raise ValueError(f"{SAMPLER_NAME}: sigmas must decrease strictly, got {sig}")
    if sig[0] > 1.0 or sig[-1] < 0.0:
        raise ValueError(f"{SAMPLER_NAME}: flow sigmas lie in [0, 1], got {sig[0]} … {sig[-1]}")
    ts = integer_timesteps(sigmas, shift, multiplier)
    # the official loop starts from pure noise at its top sigma (0.999 before the shift)
    top = float(official_schedule(1, shift, multiplier)[0][0])
    if sig[0] >= top and getattr(model, "noise", None) is not None:
        latent = getattr(model, "latent_image", None)
        x = model.noise if latent is None else ms.noise_scaling(torch.ones_like(sigmas[0]), model.noise, latent)
    s_in = x.new_ones([x.shape[0]])
    history: list[tuple[float, torch.Tensor]] = []  # (sigma, x0) of the steps so far
    x_before = None  # the sample the last predictor started from
    last_order = 0
    for i in trange(n, disable=disable):
        t = int(ts[i])
        if t > 0:
            s_model = _sigma_for_timestep(t, ms, x)
            denoised = model(x, s_model * s_in, **extra_args)
            x0 = x - (sig[i] / float(s_model)) * (x - denoised)
        else:  # timestep 0: the model's own sigma (no velocity to rescale)
            x0 = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": x0})
        if x_before is not None:  # UniC: refine the predicted sample with its own x0
            s_prev, m_prev = history[-1]
            x = _unipc_update(x_before, s_prev, sig[i], m_prev, history[:-1], last_order, corrector_m=x0)
        history.append((sig[i], x0))
        order = min(ORDER, n - i, i + 1)
        x_before = x
        x = _unipc_update(x, sig[i], sig[i + 1], x0, history[:-1], order)
        last_order = order
        if len(history) > ORDER + 1:
            history.pop(0)
    return x


def register() -> None:
    """Add the sampler and the scheduler to ComfyUI's lists (idempotent; the last import's
    functions serve)."""
    import comfy.k_diffusion.sampling as kds
    import comfy.samplers as cs

    setattr(kds, f"sample_{SAMPLER_NAME}", sample_flow_unipc)
    for names in (cs.KSAMPLER_NAMES, cs.SAMPLER_NAMES):
        if SAMPLER_NAME not in names:
            names.append(SAMPLER_NAME)
    cs.SCHEDULER_HANDLERS[SCHEDULER_NAME] = cs.SchedulerHandler(scheduler, use_ms=True)
    if SCHEDULER_NAME not in cs.SCHEDULER_NAMES:
        cs.SCHEDULER_NAMES.append(SCHEDULER_NAME)
