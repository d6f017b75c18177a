"""The pack's flow UniPC sampler + official scheduler against the official SteadyDancer sampling loop.

Oracle: ``FlowUniPCMultistepScheduler`` imported unchanged from the official source cache
(``wan/utils/fm_solvers_unipc.py``; it needs only diffusers, which the dev venv has), driven by our
restatement of the loop of ``WanI2VDancer.generate`` (``wan/image2video_dancer.py``: the
``set_timesteps(steps, shift=shift)`` call, the three-way guidance with its pose window, one
``step`` per timestep) from the noise that ``generate`` draws for a seed.

Denoiser: a tiny *official-architecture* SteadyDancer (the official ``WanModel`` of
``model_dancer.py`` at dim 64, random weights, loaded as ``make_goldens.py`` does) with fixed
conditioning. Both sides call this same network: the official loop directly; ComfyUI through a
model wrapper that replaces the forward of a tiny core Wan model (so ComfyUI's own sigma ↔
timestep mapping, ``calculate_denoised``, noise scaling, latent processing, guiders, KSampler
and SamplerCustomAdvanced all run; only the network is swapped). Our port of the network is
compared with the official forward separately (test_parity.py); here the subject is the sampler,
so the network must be identical on both sides. Its CLIP projection depends only on the fixed
CLIP features and is memoised (same values; it is most of the cost of a call).

ComfyUI side (the quality preset's graph): ModelSamplingSD3(shift) → BasicScheduler
(``flow_unipc_official``) and SteadyDancerGuider (cfg 5, pose cfg 1.5, window 0.1–0.4);
KSamplerSelect(``flow_unipc_bh2``); RandomNoise(seed); SamplerCustomAdvanced. ComfyUI draws
CPU noise for a seed exactly as the official ``generate`` does on CPU (same generator, same
element count), so the same seed gives the same noise on both sides.
"""

import importlib.util
import re
from pathlib import Path

import pytest
import torch

import golden_recipe as R
from pack_loader import pack_module

CFG, POSE_CFG, POSE_START, POSE_END = 5.0, 1.5, 0.1, 0.4
SEED = 1234
LATENT = (16, 2, 4, 4)  # C, T, h, w (a 5-frame 32x32 video)
OFFICIAL_TINY = dict(model_type="i2v", in_dim=36, dim=64, ffn_dim=128, freq_dim=32, text_dim=32, out_dim=16, num_heads=2, num_layers=1, text_len=16, cross_attn_norm=True, qk_norm=True, eps=1e-6)
BOUND = 1e-3


def rel_rms(a, b):
    return float(((a - b).pow(2).mean() / b.pow(2).mean()).sqrt())


class _Memo(torch.nn.Module):
    """Wraps the official ``img_emb``: computed once per (constant) CLIP feature tensor."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.cache = {}

    def forward(self, fea):
        hit = self.cache.get(id(fea))
        if hit is None or hit[0] is not fea:
            hit = self.cache[id(fea)] = (fea, self.inner(fea))
        return hit[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny network is latency-bound: one thread is fastest (and kinder to a shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def official(official_source):
    pytest.importorskip("diffusers", reason="the official FlowUniPCMultistepScheduler needs diffusers (comfyui-steadydancer/requirements-dev.txt)")
    import make_goldens

    torch.manual_seed(0)
    md = make_goldens.load_official(official_source)
    spec = importlib.util.spec_from_file_location("_official_fm_solvers_unipc", official_source / "wan" / "utils" / "fm_solvers_unipc.py")
    fm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fm)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in md.WanModel(**OFFICIAL_TINY).state_dict().items()}
    net = md.WanModel(**OFFICIAL_TINY)
    net.load_state_dict(R.random_weights(shapes, seed=4242), strict=True)
    net.eval()
    net.img_emb = _Memo(net.img_emb)
    g = torch.Generator().manual_seed(77)
    c, t, h, w = LATENT
    lat = lambda ch, tt=t: torch.randn(ch, tt, h, w, generator=g)  # noqa: E731
    mask = torch.zeros(4, t, h, w)
    mask[:, 0] = 1.0
    y = torch.cat([mask, lat(16)])
    ref, pose_ref = lat(16, 1), lat(16, 1)
    ref_x = torch.cat([ref, torch.ones(4, 1, h, w), ref])
    ref_c = torch.cat([pose_ref, torch.zeros(4, 1, h, w), pose_ref])
    ctx_pos, ctx_neg = torch.randn(7, 32, generator=g), torch.randn(9, 32, generator=g)
    clip_x, clip_c = torch.randn(1, 257, 1280, generator=g), torch.randn(1, 257, 1280, generator=g)
    pose, pose_null = lat(16), lat(16)
    # the official generate's three argument sets: arg_c, arg_null_context, arg_null_condition
    args = [(ctx_pos, pose), (ctx_neg, pose), (ctx_pos, pose_null)]

    @torch.no_grad()
    def velocity(x, t, which):
        ctx, cond = args[which]
        return net([x], t=t, context=[ctx], seq_len=None, condition=cond, ref_x=ref_x, ref_c=ref_c, clip_fea_x=clip_x, clip_fea_c=clip_c, y=[y])[0]

    return fm, velocity


def official_noise(seed):
    """``generate``'s noise on a CPU device."""
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return torch.randn(*LATENT, dtype=torch.float32, generator=g, device="cpu")


_OFFICIAL_RUNS = {}


def official_loop(fm, velocity, steps, shift, cfg=CFG, pose_cfg=POSE_CFG, seed=SEED):
    """The sampling part of ``WanI2VDancer.generate`` (sample_solver 'unipc'), on CPU in fp32
    (each configuration runs once per session)."""
    key = (id(velocity), steps, shift, cfg, pose_cfg, seed)
    if key not in _OFFICIAL_RUNS:
        _OFFICIAL_RUNS[key] = _official_loop(fm, velocity, steps, shift, cfg, pose_cfg, seed)
    return _OFFICIAL_RUNS[key]


def _official_loop(fm, velocity, steps, shift, cfg, pose_cfg, seed):
    """Drives the official scheduler the way ``generate`` does: the scheduler built with shift 1 and
    the real shift given to ``set_timesteps``; at each of its timesteps the network's velocity for
    the positive set, the text-null set and (inside the pose window, a fraction of the steps) the
    pose-null set, mixed by the three-way formula; then one scheduler ``step``."""
    solver = fm.FlowUniPCMultistepScheduler(num_train_timesteps=1000, shift=1, use_dynamic_shifting=False)
    solver.set_timesteps(steps, device="cpu", shift=shift)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    x = official_noise(seed)
    n = len(solver.timesteps)
    for i, t in enumerate(solver.timesteps):
        tt = torch.stack([t])
        v_pos, v_text_null = velocity(x, tt, 0), velocity(x, tt, 1)
        v = v_text_null + cfg * (v_pos - v_text_null)
        if POSE_START < i / n < POSE_END:
            v = v + pose_cfg * (v_pos - velocity(x, tt, 2))
        x = solver.step(v.unsqueeze(0), t, x.unsqueeze(0), return_dict=False, generator=gen)[0].squeeze(0)
    return x, solver


@pytest.fixture(scope="module")
def comfy_side(comfy, official):
    """A tiny core Wan model whose forward is the official network, plus ComfyUI's nodes."""
    import comfy.ldm.wan.model as wan
    import comfy.ops
    import comfy.sd
    import comfy.utils
    import nodes
    from comfy_extras import nodes_custom_sampler as ncs
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    _, velocity = official
    # core model detection reads the dims from the keys (text dim 4096, freq dim 256, heads dim/128)
    with torch.device("meta"):
        m = wan.WanModel(
            model_type="t2v",
            patch_size=(1, 2, 2),
            text_len=16,
            in_dim=16,
            dim=128,
            ffn_dim=256,
            freq_dim=256,
            text_dim=4096,
            out_dim=16,
            num_heads=1,
            num_layers=1,
            operations=comfy.ops.disable_weight_init,
        )
    base = comfy.sd.load_diffusion_model_state_dict({k: torch.zeros(v.shape) for k, v in m.state_dict().items()})
    calls = []

    def model_for(shift):
        (p,) = ModelSamplingSD3().patch(base, shift)
        ms = p.get_model_object("model_sampling")

        def forward(apply, a):
            x, sigma, which = a["input"], a["timestep"], a["cond_or_uncond"]
            t = ms.timestep(sigma)
            per = x.shape[0] // len(which)
            v = torch.cat([velocity(x[i], t[i : i + 1], which[i // per]).unsqueeze(0) for i in range(x.shape[0])])
            calls.append((float(t[0]), set(which)))
            return ms.calculate_denoised(sigma, v, x)

        p.set_model_unet_function_wrapper(forward)
        return p

    text = lambda n: [[torch.full((1, n, 4096), float(n)), {}]]  # noqa: E731  (ignored by the wrapper)
    conds = {"positive": text(1), "negative": text(2), "negative_pose": text(3)}
    pbar = comfy.utils.PROGRESS_BAR_ENABLED
    comfy.utils.PROGRESS_BAR_ENABLED = False
    yield {"model_for": model_for, "calls": calls, "conds": conds, "ncs": ncs, "nodes": nodes}
    comfy.utils.PROGRESS_BAR_ENABLED = pbar


def per_step(calls):
    """Model calls grouped by timestep: [(t, the conditionings evaluated at t)] (ComfyUI may batch
    the conditionings of one step together or run them one by one)."""
    out = []
    for t, which in calls:
        if out and out[-1][0] == t:
            out[-1][1].update(which)
        else:
            out.append((t, set(which)))
    return out


def comfy_custom_advanced(side, steps, shift, sampler, scheduler, sigmas=None):
    """The quality preset's graph, with SamplerCustomAdvanced; returns the final latent (model space)."""
    ncs, c = side["ncs"], side["conds"]
    guider_node = pack_module("nodes_guidance").SteadyDancerGuider
    model = side["model_for"](shift)
    (guider,) = guider_node.execute(model, c["positive"], c["negative"], c["negative_pose"], CFG, POSE_CFG, POSE_START, POSE_END).result
    (smp,) = ncs.KSamplerSelect().get_sampler(sampler)
    if sigmas is None:
        (sigmas,) = ncs.BasicScheduler().get_sigmas(model, scheduler, steps, 1.0)
    (noise,) = ncs.RandomNoise().get_noise(SEED)
    latent = {"samples": torch.zeros(1, *LATENT)}
    out, _ = ncs.SamplerCustomAdvanced().sample(noise, guider, smp, sigmas, latent)
    return model.model.process_latent_in(out["samples"])[0], sigmas


def test_registered_where_core_nodes_look(comfy):
    import comfy.samplers
    from comfy_extras import nodes_custom_sampler as ncs
    import nodes

    assert "flow_unipc_bh2" in ncs.KSamplerSelect.INPUT_TYPES()["required"]["sampler_name"][0]
    assert "flow_unipc_official" in ncs.BasicScheduler.INPUT_TYPES()["required"]["scheduler"][0]
    req = nodes.KSampler.INPUT_TYPES()["required"]
    assert "flow_unipc_bh2" in req["sampler_name"][0] and "flow_unipc_official" in req["scheduler"][0]
    assert isinstance(comfy.samplers.sampler_object("flow_unipc_bh2"), comfy.samplers.KSAMPLER)
    before = list(comfy.samplers.SAMPLER_NAMES)
    pack_module("flow_unipc").register()  # idempotent
    assert comfy.samplers.SAMPLER_NAMES == before


STEP_GRID = [1, 2, 3, 5, 10, 37, 40, 50, 74]


@pytest.mark.parametrize("shift", [1.0, 3.0, 5.0, 7.5])
def test_scheduler_gives_official_sigmas_and_timesteps(official, comfy_side, shift):
    import comfy.samplers

    fu = pack_module("flow_unipc")
    fm, _ = official
    ms = comfy_side["model_for"](shift).get_model_object("model_sampling")  # ModelSamplingSD3(shift)
    naive_differs = False
    for steps in STEP_GRID:
        ref = fm.FlowUniPCMultistepScheduler(num_train_timesteps=1000, shift=1, use_dynamic_shifting=False)
        ref.set_timesteps(steps, device="cpu", shift=shift)
        sigmas = comfy.samplers.calculate_sigmas(ms, "flow_unipc_official", steps)
        assert sigmas.dtype == torch.float32 and torch.equal(sigmas, ref.sigmas), (shift, steps)
        assert float(sigmas[0]) == pytest.approx(shift * 0.999 / (1 + (shift - 1) * 0.999), rel=1e-6)
        ts = fu.integer_timesteps(sigmas, shift, 1000.0)
        assert torch.equal(ts, ref.timesteps), (shift, steps, ts, ref.timesteps)
        naive_differs |= not torch.equal(torch.floor(sigmas[:-1].double() * 1000).long(), ref.timesteps)
    if shift == 1.0:  # 37 and 74 steps at shift 1 hit an integer that float32 cannot place
        assert naive_differs


@pytest.mark.parametrize("shift", [3.0, 5.0])
@pytest.mark.parametrize("steps", [5, 10, 40])
def test_quality_graph_reproduces_official_loop(official, comfy_side, shift, steps):
    fm, velocity = official
    ref, sched = official_loop(fm, velocity, steps, shift)
    comfy_side["calls"].clear()
    ours, sigmas = comfy_custom_advanced(comfy_side, steps, shift, "flow_unipc_bh2", "flow_unipc_official")
    assert torch.equal(sigmas, sched.sigmas)
    # the network ran at the official integer timesteps, with the pose window where upstream has it
    expected = [(float(t), {0, 1, 2} if POSE_START < idx / steps < POSE_END else {0, 1}) for idx, t in enumerate(sched.timesteps.tolist())]
    assert per_step(comfy_side["calls"]) == expected
    err = rel_rms(ours, ref)
    print(f"flow_unipc_bh2 + flow_unipc_official, shift {shift:g}, {steps} steps: relative RMS {err:.3e}")
    assert err <= BOUND, f"shift {shift}, {steps} steps: relative RMS {err:.3g} > {BOUND}"


@pytest.mark.parametrize("shift", [3.0, 5.0])
@pytest.mark.parametrize("steps", [5, 10, 40])
def test_uni_pc_bh2_misses_official_loop(official, comfy_side, shift, steps):
    """What the quality preset ran before: uni_pc_bh2 with the simple scheduler (and, to show
    that the schedule is not the whole story, with the official sigmas)."""
    fm, velocity = official
    ref, sched = official_loop(fm, velocity, steps, shift)
    simple, _ = comfy_custom_advanced(comfy_side, steps, shift, "uni_pc_bh2", "simple")
    with_official_sigmas, _ = comfy_custom_advanced(comfy_side, steps, shift, "uni_pc_bh2", None, sigmas=sched.sigmas)
    e1, e2 = rel_rms(simple, ref), rel_rms(with_official_sigmas, ref)
    print(f"uni_pc_bh2 shift {shift:g}, {steps} steps: relative RMS {e1:.3e} (simple), {e2:.3e} (official sigmas)")
    assert e1 > BOUND and e2 > BOUND


def test_ksampler_node_picks_it(official, comfy_side):
    """The plain KSampler node (text CFG only) with our sampler and scheduler = the official loop
    without pose guidance."""
    fm, velocity = official
    steps, shift = 10, 3.0
    ref, _ = official_loop(fm, velocity, steps, shift, cfg=4.0, pose_cfg=0.0)
    model = comfy_side["model_for"](shift)
    c = comfy_side["conds"]
    (out,) = comfy_side["nodes"].KSampler().sample(model, SEED, steps, 4.0, "flow_unipc_bh2", "flow_unipc_official", c["positive"], c["negative"], {"samples": torch.zeros(1, *LATENT)})
    err = rel_rms(model.model.process_latent_in(out["samples"])[0], ref)
    print(f"KSampler flow_unipc_bh2, cfg 4, shift {shift:g}, {steps} steps: relative RMS {err:.3e}")
    assert err <= BOUND


def test_non_flow_model_is_a_clear_error(comfy):
    import comfy.model_sampling as cms
    import comfy.samplers

    fu = pack_module("flow_unipc")

    class Eps(cms.ModelSamplingDiscrete, cms.EPS):
        pass

    with pytest.raises(TypeError, match="need a flow-matching model"):
        comfy.samplers.calculate_sigmas(Eps(), "flow_unipc_official", 10)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        fu.official_schedule(0, 3.0)
    with pytest.raises(ValueError, match="shift must be a positive number"):
        fu.official_schedule(10, -1.0)


def test_bad_sigmas_are_clear_errors(official, comfy_side):
    with pytest.raises(ValueError, match="decrease strictly"):
        comfy_custom_advanced(comfy_side, 3, 3.0, "flow_unipc_bh2", None, sigmas=torch.tensor([0.9, 0.9, 0.0]))
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        comfy_custom_advanced(comfy_side, 3, 3.0, "flow_unipc_bh2", None, sigmas=torch.tensor([14.6, 3.0, 0.0]))


def test_quality_preset_names_this_sampler_and_scheduler():
    """The toolkit's quality preset (src/comfy/params.ts) asks ComfyUI for exactly these names."""
    fu = pack_module("flow_unipc")
    ts = (Path(__file__).resolve().parents[2] / "src" / "comfy" / "params.ts").read_text()
    m = re.search(r"^\s*quality: \{[^}]*\bsampler: '([^']+)', scheduler: '([^']+)'", ts, re.M)
    assert m, "quality preset not found in src/comfy/params.ts"
    assert (m[1], m[2]) == (fu.SAMPLER_NAME, fu.SCHEDULER_NAME)
