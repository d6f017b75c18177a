"""Read a .safetensors file with several threads into one buffer (cold start, issue #13).

ComfyUI reads safetensors through ``safe_open``: the file is memory-mapped and read by page
faults while ``load_state_dict`` copies each tensor into the model, one thread, the kernel's
readahead at a time. On the H200 host that was 15.9 s for the 16.4 GB fp8 file (~1.0 GB/s), a
third of the cold start. Here each thread reads its own 64 MiB pieces with ``os.preadv``
straight into a single uint8 buffer and the tensors are views of that buffer, so the loader can
hand them to the model without another copy (``assign_weights``).

The format (https://github.com/huggingface/safetensors, "Format"): 8 bytes little-endian
header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, optional
"__metadata__": {str: str}}, then the data; offsets are relative to the byte after the header.
The safetensors library has no parallel reader, hence this small one; every header is checked
as strictly as the library does (known dtype, sizes, bounds, no overlaps) and a bad file is a
``CheckpointError`` naming it.
"""

from __future__ import annotations

import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor

import torch

from .convert import CheckpointError

CHUNK = 64 << 20
MAX_HEADER = 100_000_000

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
for _name, _attr in (("U16", "uint16"), ("U32", "uint32"), ("U64", "uint64")):
    if hasattr(torch, _attr):
        DTYPES[_name] = getattr(torch, _attr)


def default_threads() -> int:
    """STEADYDANCER_READ_THREADS (0 = ComfyUI's mmap reader), else min(8, CPUs)."""
    raw = os.environ.get("STEADYDANCER_READ_THREADS", "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            raise CheckpointError(f"STEADYDANCER_READ_THREADS={raw!r}: expected a whole number (0 = mmap reader)") from None
        if n < 0:
            raise CheckpointError(f"STEADYDANCER_READ_THREADS={raw!r}: expected 0 or more")
        return n
    return max(1, min(8, os.cpu_count() or 1))


def read_header(path):
    """(data start, [(name, dtype, shape, begin, end)] sorted by begin, metadata, data length)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, not even a header)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > MAX_HEADER:
            raise CheckpointError(f"{path}: not a safetensors file or truncated header (header says {n} bytes, file has {size})")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except ValueError as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{path}: __metadata__ must map names to strings")
    entries = []
    for name, info in header.items():
        bad = lambda why, name=name: CheckpointError(f"{path}: tensor {name!r}: {why}")  # noqa: E731
        if not isinstance(info, dict):
            raise bad("header entry is not an object")
        dtype = DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise bad(f"dtype {info.get('dtype')!r} is not one this reader knows ({', '.join(DTYPES)})")
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise bad(f"shape {shape!r} is not a list of non-negative integers")
        offs = info.get("data_offsets")
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) and not isinstance(o, bool) for o in offs)) or not 0 <= offs[0] <= offs[1]:
            raise bad(f"data_offsets {offs!r} are not [begin, end] with 0 <= begin <= end")
        numel = 1
        for d in shape:
            numel *= d
        want = numel * torch.empty((), dtype=dtype).element_size()
        if offs[1] - offs[0] != want:
            raise bad(f"{offs[1] - offs[0]} bytes for shape {shape} of {info['dtype']} ({want} bytes)")
        entries.append((name, dtype, shape, offs[0], offs[1]))
    entries.sort(key=lambda e: (e[3], e[4]))
    end = 0
    for name, _, _, begin, stop in entries:
        if begin < end:
            raise CheckpointError(f"{path}: tensor {name!r} overlaps the one before it (starts at {begin}, previous ends at {end})")
        end = stop
    data_start = 8 + n
    if data_start + end > size:
        raise CheckpointError(f"{path}: truncated file: its header needs {data_start + end} bytes but the file has {size}; download it again (the download was probably interrupted)")
    return data_start, entries, meta, end


def _fill(fd, view, offset, path):
    """Read len(view) bytes at ``offset`` into ``view`` (short reads retried)."""
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise CheckpointError(f"{path}: file ended while reading (at byte {offset + done}); was it truncated while loading?")
        done += got


def load(path, threads=None, chunk=CHUNK):
    """(state dict of CPU tensors, metadata). Tensors are views of one buffer where their offset
    is aligned for their dtype (a copy otherwise). ``threads`` None = ``default_threads()``."""
    path = os.fspath(path)
    threads = default_threads() if threads is None else int(threads)
    if threads < 1:
        raise CheckpointError(f"threads must be >= 1 for the parallel reader, got {threads}")
    data_start, entries, meta, length = read_header(path)
    buf = torch.empty(length, dtype=torch.uint8)
    if length:
        view = memoryview(buf.numpy()).cast("B")
        pieces = [(a, min(a + chunk, length)) for a in range(0, length, chunk)]
        fd = os.open(path, os.O_RDONLY)
        try:
            if threads == 1 or len(pieces) == 1:
                for a, b in pieces:
                    _fill(fd, view[a:b], data_start + a, path)
            else:
                with ThreadPoolExecutor(max_workers=min(threads, len(pieces)), thread_name_prefix="sd-read") as pool:
                    for f in [pool.submit(_fill, fd, view[a:b], data_start + a, path) for a, b in pieces]:
                        f.result()
        finally:
            os.close(fd)
    sd = {}
    for name, dtype, shape, begin, stop in entries:
        raw = buf[begin:stop]
        size = torch.empty((), dtype=dtype).element_size()
        if begin % size:
            raw = raw.clone()  # a view of another dtype needs an aligned start
        sd[name] = raw.view(dtype).reshape(shape)
    return sd, meta


def assign_weights(module, sd):
    """Load ``sd`` into ``module`` like ``load_state_dict(strict=False)``, but a parameter or
    buffer whose shape and dtype already match takes the given tensor itself (no copy: the
    parallel reader's buffer becomes the weights). Returns (missing, unexpected) key lists."""
    own = dict(module.named_parameters(recurse=True))
    bufs = dict(module.named_buffers(recurse=True))
    rest = {}
    for key, value in sd.items():
        cur = own.get(key)
        if cur is None:
            cur = bufs.get(key)
        if cur is not None and cur.shape == value.shape and cur.dtype == value.dtype and cur.device == value.device:
            owner, _, leaf = key.rpartition(".")
            mod = module.get_submodule(owner) if owner else module
            if leaf in mod._parameters:
                mod._parameters[leaf] = torch.nn.Parameter(value, requires_grad=False)
            else:
                mod._buffers[leaf] = value
        else:
            rest[key] = value
    result = module.load_state_dict(rest, strict=False)
    missing = [k for k in result.missing_keys if k not in sd]
    return missing, list(result.unexpected_keys)
