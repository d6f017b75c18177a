"""The fast block path (steadydancer/fast.py): kernel choice and fallback, fp8 linears, block parity.

CPU parts run everywhere: the choice logic on given machine descriptions, fp8 quantisation and the
per-tensor fp8 matmul (torch's CPU ``_scaled_mm``), the smoothing identity of FA3 fp8, our block
against ComfyUI's ``WanAttentionBlock`` and the whole model through the fast path. The kernels
themselves (SageAttention2, FlashAttention-3, row-wise fp8) need a CUDA GPU: those tests skip
loudly here; bench/steadydancer_forward.py measures them on the GPU.
"""

import logging

import pytest
import torch
import torch.nn.functional as F

from sd_helpers import recipe_weights

CPU = dict(capability=None, sage="sageattention does not import", fa3="fa3_fwd_interface does not import")
H200_ALL = dict(capability=(9, 0), sage=None, fa3=None)


@pytest.fixture(scope="module")
def fast(comfy):
    from comfyui_steadydancer.steadydancer import fast

    return fast


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def k(fast, **kw):
    return fast.Kernels(**kw)


# --- choice and fallback ---------------------------------------------------------------------
def test_auto_on_cpu_is_comfyui_plain_path(fast):
    s = fast.resolve(kernels=k(fast, **CPU), env={})
    assert s == fast.Speed("sdpa", "off", False) == fast.Speed()


def test_auto_on_hopper_with_everything(fast):
    s = fast.resolve(kernels=k(fast, **H200_ALL), env={})
    assert s == fast.Speed(fast.ORDER_SM90[0], "rowwise", True)
    assert fast.ORDER_SM90[-1] == "sdpa" and set(fast.ORDER_SM90) == {"sdpa", "sage", "fa3", "fa3_fp8"}


@pytest.mark.parametrize(
    "sage,fa3,want",
    [
        (None, "no fa3", "sage"),  # sage built, no FA3 wheel
        ("no sage", None, "fa3_fp8"),  # FA3 wheel only: its fp8 path
        ("no sage", "no fa3", "sdpa"),  # neither: PyTorch
    ],
)
def test_auto_on_hopper_uses_what_imports(fast, sage, fa3, want):
    att, why = fast.resolve_attention("auto", k(fast, capability=(9, 0), sage=sage, fa3=fa3), env={})
    assert (att, why) == (want, "auto")


def test_fa3_is_hopper_only(fast):
    ada = k(fast, capability=(8, 9), sage=None, fa3=None)  # even when the wheel imports
    assert fast.resolve_attention("auto", ada, env={}) == ("sage", "auto")
    att, why = fast.resolve_attention("fa3_fp8", ada, env={})
    assert att == "fa3" or att == "sage"
    assert att == "sage" and "Hopper" in why
    blackwell = k(fast, capability=(12, 0), sage="sageattention does not import", fa3=None)
    assert fast.resolve_attention("auto", blackwell, env={}) == ("sdpa", "auto")


def test_missing_kernel_falls_back_with_one_log_line(fast, caplog):
    kern = k(fast, capability=(9, 0), sage="sageattention does not import (ModuleNotFoundError: x)", fa3=None)
    with caplog.at_level(logging.INFO, logger="steadydancer"):
        s = fast.resolve("sage", "rowwise", "on", kernels=kern, env={})
    assert s.attention == "fa3"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "sage" in warnings[0].getMessage() and "falls back to fa3" in warnings[0].getMessage()
    assert "sageattention does not import" in warnings[0].getMessage()


def test_attention_backend_env_sets_what_auto_means(fast):
    kern = k(fast, **H200_ALL)
    assert fast.resolve_attention("auto", kern, env={"ATTENTION_BACKEND": "sage"}) == ("sage", "ATTENTION_BACKEND")
    assert fast.resolve_attention("auto", kern, env={"ATTENTION_BACKEND": "pytorch"}) == ("sdpa", "ATTENTION_BACKEND")
    assert fast.resolve_attention("auto", kern, env={"ATTENTION_BACKEND": "fa3_fp8"}) == ("fa3_fp8", "ATTENTION_BACKEND")
    # start.sh's own "auto" (and values that are not ours, e.g. xformers) leave the pick to us
    assert fast.resolve_attention("auto", kern, env={"ATTENTION_BACKEND": "auto"})[1] == "auto"
    # an explicit choice on the node wins over the variable
    assert fast.resolve_attention("fa3", kern, env={"ATTENTION_BACKEND": "sage"}) == ("fa3", "asked")
    # the variable naming a kernel this machine lacks falls back like an explicit choice
    cpu = k(fast, **CPU)
    att, why = fast.resolve_attention("auto", cpu, env={"ATTENTION_BACKEND": "sage"})
    assert att == "sdpa" and "no CUDA GPU" in why


def test_fp8_and_compile_choices(fast):
    cpu, ampere = k(fast, **CPU), k(fast, capability=(8, 0), sage=None, fa3="x")
    assert fast.resolve_fp8("auto", ampere)[0] == "off"
    assert fast.resolve_fp8("rowwise", ampere)[0] == "off"
    assert fast.resolve_fp8("rowwise", cpu)[0] == "tensorwise"  # torch's CPU _scaled_mm: per tensor only
    assert fast.resolve_fp8("tensorwise", k(fast, **H200_ALL)) == ("tensorwise", "asked")
    assert fast.resolve_compile("auto", cpu)[0] is False
    assert fast.resolve_compile("on", cpu)[0] is True
    no_triton = k(fast, capability=(9, 0), sage=None, fa3=None, triton="triton does not import")
    assert fast.resolve_compile("auto", no_triton) == (False, "compile unavailable: triton does not import")


@pytest.mark.parametrize("kw", [dict(attention="flash2"), dict(fp8_matmul="int8"), dict(compile="yes")])
def test_bad_choice_is_a_clear_error(fast, kw):
    with pytest.raises(ValueError, match="SteadyDancer speed: .* must be one of"):
        fast.resolve(kernels=k(fast, **CPU), env={}, **kw)


def test_probe_here_names_what_is_missing(fast):
    kern = fast.probe()
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: probe's CPU answer not checked here")
    assert kern.capability is None
    assert kern.missing("sage") == "no CUDA GPU" and kern.missing("fa3_fp8") == "no CUDA GPU"
    assert kern.missing("sdpa") is None


def test_compute_dtype_bf16_only_where_kernels_need_it(fast):
    assert fast.compute_dtype_for(fast.Speed("fa3", "off", False), "cuda") == torch.bfloat16
    assert fast.compute_dtype_for(fast.Speed("sdpa", "rowwise", True), "cuda") == torch.bfloat16
    assert fast.compute_dtype_for(fast.Speed("sage", "tensorwise", True), "cuda") is None
    assert fast.compute_dtype_for(fast.Speed("fa3", "rowwise", False), "cpu") is None


# --- fp8 -------------------------------------------------------------------------------------
def test_rowwise_quantisation_scales_each_token(fast):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 96, generator=g) * torch.logspace(-3, 3, 64)[:, None]  # rows 6 decades apart
    x[5] = 0  # a zero row stays zero (no NaN)
    q, s = fast.quantize_activation(x, "rowwise")
    assert q.dtype == torch.float8_e4m3fn and s.shape == (64, 1) and s.dtype == torch.float32
    back = q.float() * s
    assert torch.isfinite(back).all() and (back[5] == 0).all()
    assert float(q.float().abs().amax(dim=1)[6:].min()) == 448.0  # every nonzero row uses the full range
    # e4m3: 3 mantissa bits → ≤ 2^-4 relative rounding per element in its normal range
    per_row = (back - x).norm(dim=1) / x.norm(dim=1).clamp(min=1e-30)
    assert float(per_row[6:].max()) < 2**-4
    qt, st = fast.quantize_activation(x, "tensorwise")
    assert st.shape == ()
    small = (qt.float() * st - x)[:10].norm() / x[:10].norm()  # tiny rows lose their digits per tensor
    assert float(small) > 0.5


def test_tensorwise_fp8_linear_on_cpu_matches_float(fast):
    from comfyui_steadydancer.steadydancer.convert import quantize_fp8

    g = torch.Generator().manual_seed(1)
    w = torch.randn(80, 96, generator=g) / 10
    wq, sw = quantize_fp8(w)
    x = torch.randn(2, 33, 96, generator=g).to(torch.bfloat16)
    bias = torch.randn(80, generator=g).to(torch.bfloat16)
    y = fast.fp8_linear(x, wq, sw, bias, "tensorwise")
    assert y.shape == (2, 33, 80) and y.dtype == torch.bfloat16
    ref = F.linear(x.double(), (wq.double() * sw.double()), bias.double())
    err = rel(y, ref)
    assert 1e-4 < err < 0.06, err  # fp8 activations: a few % at most, and not the float result
    with pytest.raises(ValueError, match="per-tensor weight scale"):
        fast.fp8_linear(x, wq, torch.ones(80), bias, "tensorwise")


def test_smoothing_is_exact_and_fp8_attention_close(fast):
    g = torch.Generator().manual_seed(2)
    b, s, h, d = 1, 300, 2, 64
    q = torch.randn(b, s, h, d, generator=g)
    k_ = torch.randn(b, s, h, d, generator=g) + 3.0  # a large shared offset, as Wan's keys have
    v = torch.randn(b, s, h, d, generator=g) + 1.0
    ref = fast.attention_sdpa(q.double(), k_.double(), v.double())
    q8, k8, v8, dq, dk, dv, vm = fast.smooth_quantize_fp8(q, k_, v)
    assert q8.dtype == torch.float8_e4m3fn and dq.shape == (b, h) and vm.shape == (b, 1, h, d)
    deq = lambda t, sc: t.double() * sc.double()[:, None, :, None]  # noqa: E731
    smoothed = fast.attention_sdpa(deq(q8, dq), deq(k8, dk), deq(v8, dv)) + vm.double().reshape(b, 1, h * d)
    assert rel(smoothed, ref) < 3e-2
    # without quantisation the smoothing itself is exact
    kd, vd = k_.double(), v.double()
    km, vmean = kd.mean(1, keepdim=True), vd.mean(1, keepdim=True)
    exact = fast.attention_sdpa(q.double(), kd - km, vd - vmean) + vmean.reshape(b, 1, h * d)
    assert rel(exact, ref) < 1e-12


# --- the block and the model -----------------------------------------------------------------
@pytest.fixture(scope="module")
def fp8_model(comfy):
    from comfyui_steadydancer.steadydancer.layouts import to_fp8_scaled
    from comfyui_steadydancer.steadydancer.loading import load_state_dict_model

    return load_state_dict_model(to_fp8_scaled(recipe_weights()), num_heads=2)


def block_inputs(dm, seed=3, tokens=3 * 4 * 4):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float32)  # noqa: E731
    x = r(1, tokens, dm.dim)
    e = r(1, 1, 6, dm.dim) * 0.1
    context = r(1, 257 + dm.text_len, dm.dim)
    freqs = dm.rope_encode(3, 8, 8, device=x.device, dtype=torch.float32)
    return x, e, freqs, context


def test_our_block_equals_comfyui_block(fast, fp8_model):
    dm = fp8_model.model.diffusion_model
    x, e, freqs, context = block_inputs(dm)
    blk = dm.blocks[0]
    with torch.no_grad():
        ref = blk(x, e=e, freqs=freqs, context=context, context_img_len=257)
        ours = fast.block_forward(blk, x, e, freqs, context, 257, "sdpa", "off")
    assert ours.shape == ref.shape
    assert rel(ours, ref) < 1e-6


def test_fp8_block_uses_file_weights_and_scales(fast, fp8_model):
    dm = fp8_model.model.diffusion_model
    x, e, freqs, context = block_inputs(dm, seed=4)
    blk = dm.blocks[1]
    assert blk.self_attn.q.weight.dtype == torch.float8_e4m3fn
    with torch.no_grad():
        ref = blk(x, e=e, freqs=freqs, context=context, context_img_len=257)
        ours = fast.block_forward(blk, x, e, freqs, context, 257, "sdpa", "tensorwise")
    err = rel(ours, ref)
    assert 1e-4 < err < 0.08, err


def _model_inputs(dm, seed=5):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    T, h, w = 3, 8, 8
    x = r(1, 36, T, h, w)
    return dict(
        x=x,
        timestep=torch.tensor([700.0]),
        context=r(1, 7, dm.text_embedding[0].in_features),
        clip_fea=r(1, 257, 1280),
        sd_clip_pose=r(1, 257, 1280),
        sd_pose=r(1, 16, T, h, w),
        sd_ref=r(1, 16, 1, h, w),
        sd_pose_ref=r(1, 16, 1, h, w),
    )


def test_model_forward_through_speed_option(fast, fp8_model):
    dm = fp8_model.model.diffusion_model
    kw = _model_inputs(dm)
    x, t, ctx = kw.pop("x"), kw.pop("timestep"), kw.pop("context")
    with torch.no_grad():
        plain = dm(x, t, ctx, **kw)
        same = dm(x, t, ctx, transformer_options={"steadydancer_speed": fast.Speed().as_options()}, **kw)
        fp8 = dm(x, t, ctx, transformer_options={"steadydancer_speed": fast.Speed("sdpa", "tensorwise", False).as_options()}, **kw)
    assert torch.equal(plain, same)  # the trivial choice is ComfyUI's own block path
    err = rel(fp8, plain)
    assert 1e-4 < err < 0.1, err


def test_compile_failure_runs_eagerly_with_one_log_line(fast, fp8_model, caplog, monkeypatch):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no compiler here (test backend)")

    monkeypatch.setitem(fast._COMPILED, "block", torch.compile(fast.block_forward, backend=broken_backend))
    monkeypatch.setattr(fast, "_COMPILE_BROKEN", [])
    dm = fp8_model.model.diffusion_model
    x, e, freqs, context = block_inputs(dm, seed=6)
    run = fast.block_runner(fast.Speed("sdpa", "off", True))
    with caplog.at_level(logging.WARNING, logger="steadydancer"), torch.no_grad():
        a = run(dm.blocks[0], x, e, freqs, context, 257)
        b = run(dm.blocks[1], x, e, freqs, context, 257)
    lines = [r for r in caplog.records if "torch.compile of the block failed" in r.getMessage()]
    assert len(lines) == 1 and "no compiler here" in lines[0].getMessage()
    with torch.no_grad():
        assert torch.equal(a, fast.block_forward(dm.blocks[0], x, e, freqs, context, 257, "sdpa", "off"))
        assert torch.equal(b, fast.block_forward(dm.blocks[1], x, e, freqs, context, 257, "sdpa", "off"))


def test_speed_node_patches_a_clone(comfy, fp8_model):
    node = comfy.nodes_speed.SteadyDancerSpeed
    (patched,) = node.execute(fp8_model, attention="sdpa", fp8_matmul="rowwise", compile="off").result
    opts = patched.model_options["transformer_options"]["steadydancer_speed"]
    want_fp8 = "rowwise" if torch.cuda.is_available() else "tensorwise"
    assert opts == {"attention": "sdpa", "fp8": want_fp8, "compile": False}
    assert "steadydancer_speed" not in fp8_model.model_options.get("transformer_options", {})
    with pytest.raises(ValueError, match="attention must be one of"):
        node.execute(fp8_model, attention="xformers")
    inputs = node.INPUT_TYPES()["required"]
    assert inputs["attention"][1]["options"] == ["auto", "sdpa", "sage", "fa3", "fa3_fp8"]


# --- GPU-only ---------------------------------------------------------------------------------
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (row-wise fp8 matmul, SageAttention2, FlashAttention-3); measured by bench/steadydancer_forward.py --speeds ... --kernels N on the device"
)


@needs_cuda
def test_rowwise_fp8_linear_on_gpu(fast):
    from comfyui_steadydancer.steadydancer.convert import quantize_fp8

    g = torch.Generator(device="cuda").manual_seed(7)
    w = torch.randn(256, 512, generator=g, device="cuda") / 20
    wq, sw = quantize_fp8(w)
    x = torch.randn(300, 512, generator=g, device="cuda").to(torch.bfloat16)
    bias = torch.randn(256, generator=g, device="cuda").to(torch.bfloat16)
    y = fast.fp8_linear(x, wq, sw, bias, "rowwise")
    assert rel(y, F.linear(x.double(), wq.double() * sw.double(), bias.double())) < 0.05


@needs_cuda
@pytest.mark.parametrize("backend", ["sage", "fa3", "fa3_fp8"])
def test_kernel_attention_on_gpu(fast, backend):
    reason = fast.probe().missing(backend)
    if reason:
        pytest.skip(f"{backend}: {reason}")
    g = torch.Generator(device="cuda").manual_seed(8)
    q, k_, v = (torch.randn(1, 1024, 4, 128, generator=g, device="cuda").to(torch.bfloat16) for _ in range(3))
    out = fast.attention(q, k_, v, backend)
    assert rel(out, fast.attention_sdpa(q.double(), k_.double(), v.double())) < 3e-2


def test_shipped_workflow_loader_runs_the_auto_fast_path(comfy, fast, tmp_path):
    """docker/workflows/steadydancer-dance.api.json's loader inputs give the model the auto choice
    (on an H200 with fa3-fwd: fa3_fp8 + row-wise fp8 + compile; here: ComfyUI's plain path)."""
    import json
    from pathlib import Path

    import folder_paths
    from comfyui_steadydancer.steadydancer.layouts import write_layout

    wf = json.loads((Path(__file__).resolve().parents[2] / "docker" / "workflows" / "steadydancer-dance.api.json").read_text())
    (inputs,) = [n["inputs"] for n in wf.values() if n["class_type"] == "SteadyDancerModelLoader"]
    write_layout(recipe_weights(), "kj-fp8-scaled", tmp_path / inputs["model_name"])
    folder_paths.add_model_folder_path("diffusion_models", str(tmp_path))
    (patcher,) = comfy.nodes_model.SteadyDancerModelLoader.execute(**inputs).result
    assert patcher.model_options["transformer_options"]["steadydancer_speed"] == fast.resolve().as_options()
    assert patcher.steadydancer_speed == fast.resolve()
