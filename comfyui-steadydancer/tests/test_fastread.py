"""The parallel safetensors reader (steadydancer/fastread.py) against the safetensors library
itself (the oracle), its header checks, and the loader's no-copy weight assignment."""

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from golden_recipe import CONFIG
from sd_helpers import recipe_weights


@pytest.fixture(scope="module")
def fastread(comfy):
    from comfyui_steadydancer.steadydancer import fastread

    return fastread


def _varied():
    """Every dtype the reader knows, odd sizes (so later tensors start unaligned), a scalar, an
    empty tensor, and a tensor of more than one 64 KiB chunk."""
    g = torch.Generator().manual_seed(3)
    sd = {
        "a.f32": torch.randn(7, 3, generator=g),
        "b.bf16_odd": torch.randn(5, generator=g).to(torch.bfloat16),
        "c.f64": torch.randn(3, generator=g, dtype=torch.float64),
        "d.f16": torch.randn(2, 9, generator=g).half(),
        "e.fp8": torch.randn(33, generator=g).to(torch.float8_e4m3fn),
        "f.fp8e5": torch.randn(11, generator=g).to(torch.float8_e5m2),
        "g.i64": torch.arange(5, dtype=torch.int64),
        "h.i32": torch.arange(-3, 4, dtype=torch.int32),
        "i.i16": torch.arange(3, dtype=torch.int16),
        "j.i8": torch.arange(-4, 3, dtype=torch.int8),
        "k.u8": torch.arange(9, dtype=torch.uint8),
        "l.bool": torch.tensor([True, False, True]),
        "m.scalar": torch.tensor(2.5),
        "n.empty": torch.zeros(0, 4),
        "o.big": torch.randn(300, 128, generator=g),
    }
    return sd


def test_same_tensors_and_metadata_as_safetensors(fastread, tmp_path):
    sd = _varied()
    p = tmp_path / "v.safetensors"
    save_file(sd, str(p), metadata={"config": '{"num_heads": 2}', "note": "x"})
    ref = load_file(str(p))
    for threads, chunk in ((1, 64 << 20), (4, 1 << 16), (3, 1000)):
        got, meta = fastread.load(p, threads=threads, chunk=chunk)
        assert meta == {"config": '{"num_heads": 2}', "note": "x"}
        assert sorted(got) == sorted(ref)
        for k, v in ref.items():
            assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
            assert torch.equal(got[k].reshape(-1).view(torch.uint8), v.reshape(-1).view(torch.uint8)), k  # bitwise


def test_aligned_tensors_share_one_buffer(fastread, tmp_path):
    """No copy per tensor: the aligned tensors are views of one storage (what assign_weights
    then hands to the model)."""
    p = tmp_path / "w.safetensors"
    save_file({"x": torch.randn(64, 64), "y": torch.randn(32)}, str(p))
    got, _ = fastread.load(p, threads=2, chunk=4096)
    assert got["x"].untyped_storage().data_ptr() == got["y"].untyped_storage().data_ptr()


def _write_raw(path, header, data=b""):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize(
    "header,data,msg",
    [
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "truncated file"),
        ({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "dtype 'Q4'"),
        ({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, r"8 bytes for shape \[3\]"),
        ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "non-negative"),
        ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, "data_offsets"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "overlaps"),
        ({"t": "nope"}, b"", "not an object"),
        ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
    ],
)
def test_bad_headers_are_clear_errors(fastread, tmp_path, header, data, msg):
    from comfyui_steadydancer.steadydancer.convert import CheckpointError

    p = _write_raw(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(CheckpointError, match=msg) as e:
        fastread.load(p, threads=2)
    assert str(p) in str(e.value)


def test_not_safetensors_at_all(fastread, tmp_path):
    from comfyui_steadydancer.steadydancer.convert import CheckpointError

    p = tmp_path / "x.safetensors"
    p.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        fastread.load(p)
    p.write_bytes(struct.pack("<Q", 5) + b"{oops")
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        fastread.load(p)


@pytest.mark.parametrize("raw,msg", [("many", "whole number"), ("-2", "0 or more")])
def test_bad_thread_setting(fastread, monkeypatch, raw, msg):
    from comfyui_steadydancer.steadydancer.convert import CheckpointError

    monkeypatch.setenv("STEADYDANCER_READ_THREADS", raw)
    with pytest.raises(CheckpointError, match=msg):
        fastread.default_threads()


def _params(patcher):
    return {k: v for k, v in patcher.model.diffusion_model.state_dict().items()}


@pytest.mark.parametrize("save_dtype", [torch.float16, torch.float32])
def test_loader_same_model_as_mmap_reader_and_no_second_copy(fastread, monkeypatch, tmp_path, save_dtype):
    """The model loaded through the parallel reader equals the one ComfyUI's own mmap reader
    gives (STEADYDANCER_READ_THREADS=0); its weights live in the reader's buffer (assigned,
    not copied)."""
    from comfyui_steadydancer.steadydancer import loading

    w = {k: v.to(save_dtype) if v.is_floating_point() else v for k, v in recipe_weights().items()}
    p = tmp_path / "m.safetensors"
    save_file(w, str(p), metadata={"config": json.dumps({"num_heads": CONFIG["num_heads"]})})
    monkeypatch.setenv("STEADYDANCER_READ_THREADS", "0")
    ref = _params(loading.load_steadydancer(p))
    monkeypatch.setenv("STEADYDANCER_READ_THREADS", "3")
    patcher = loading.load_steadydancer(p)
    got = _params(patcher)
    assert sorted(got) == sorted(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype and torch.equal(got[k], ref[k]), k
    # weights kept in the file's dtype are the reader's buffer itself; converted ones are copies
    kept = [v for k, v in got.items() if k in w and v.dtype == save_dtype]
    if save_dtype == torch.float32:
        assert len(kept) == len(w), "every fp32 weight stays fp32 on the CPU"
    assert len({v.untyped_storage().data_ptr() for v in kept}) <= 1, "the weights were copied out of the reader's buffer"


def test_weights_from_comfyuis_readers_are_copied_whatever_the_thread_setting(fastread, monkeypatch, tmp_path):
    """A .pt file (ComfyUI's torch.load, which maps the file under --mmap-torch-files) and a
    safetensors file with STEADYDANCER_READ_THREADS=0 (safetensors' mmap): the model gets copies,
    never the reader's tensors, also with the parallel reader on for .safetensors (the default)."""
    import comfy.utils
    from comfyui_steadydancer.steadydancer import loading

    w = recipe_weights()
    pt = tmp_path / "m.pt"
    torch.save(w, str(pt))
    st = tmp_path / "m.safetensors"
    save_file(w, str(st), metadata={"config": json.dumps({"num_heads": CONFIG["num_heads"]})})
    seen = set()
    real = comfy.utils.load_torch_file

    def spy(*a, **k):
        sd = real(*a, **k)
        seen.update(v.untyped_storage().data_ptr() for v in sd.values())
        return sd

    monkeypatch.setattr(comfy.utils, "load_torch_file", spy)
    for path, threads in ((pt, "3"), (st, "0")):
        seen.clear()
        monkeypatch.setenv("STEADYDANCER_READ_THREADS", threads)
        got = _params(loading.load_steadydancer(path, num_heads=CONFIG["num_heads"]))
        assert seen, "ComfyUI's reader was not the one used"
        shared = [k for k, v in got.items() if v.untyped_storage().data_ptr() in seen]
        assert shared == [], f"{path.name}: weights are the reader's tensors: {shared[:3]}"
        for k, v in w.items():
            if k in got and got[k].dtype == v.dtype:
                assert torch.equal(got[k], v), k
