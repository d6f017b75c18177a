"""On-disk cache of text-encoder outputs, so repeated jobs never load the 11 GB umt5 encoder.

Key: ``(prompt, sha256 of the text-encoder file)``. The entry's file name is
``sha256(json.dumps({"v": 1, "prompt": prompt, "encoder_sha256": sha}, sort_keys=True))`` in hex
plus ``.safetensors``.

File format (version 1, one file per entry, a safetensors file):
  * tensor ``cond``: the conditioning tensor ComfyUI's text encoder produced, ``[1, tokens, dim]``
    (for Wan's umt5-xxl: dim 4096), stored on CPU in the dtype it was produced in;
  * tensor ``pooled_output`` when the encoder produced one (umt5 does not);
  * tensors ``extra.<name>`` for any other tensor in the conditioning's options dict (e.g.
    ``extra.attention_mask``); non-tensor options are not stored;
  * safetensors metadata (all strings): ``format`` = ``steadydancer-text-cache/1``, ``prompt``,
    ``encoder_sha256`` (64 lower-case hex), ``encoder_name`` (informational), ``created`` (UTC ISO).
A file whose tensors or metadata cannot be read, whose ``format`` differs, or whose prompt / hash
do not match its key is treated as corrupt: the node logs a warning and encodes again.

Writes are atomic: the entry is written to a temporary file in the cache directory, flushed and
fsync'ed, then ``os.replace``d onto its final name, so a reader never sees a half-written entry.

Cache directory: ``$STEADYDANCER_TEXT_CACHE`` when set, else ``<ComfyUI models dir>/text_cache``
(``folder_paths.models_dir``), else ``~/.cache/steadydancer/text-cache`` outside ComfyUI.

Encoder hashes are memoised in ``encoders.json`` in the cache directory, keyed by the encoder's
absolute path and valid while its size and mtime are unchanged, so an 11 GB file is hashed once.

Python API for tests and tools (e.g. the pipeline's end-to-end tests, which cannot run umt5 on a
CPU, seed the cache with it): ``write_entry(prompt, encoder_sha256, cond, ...)``,
``read_entry(prompt, encoder_sha256)``, ``entry_path(...)``, ``file_sha256(path)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

log = logging.getLogger("steadydancer")

FORMAT = "steadydancer-text-cache/1"
ENV = "STEADYDANCER_TEXT_CACHE"
_HEX = set("0123456789abcdef")
_memo_lock = threading.Lock()


class CorruptEntry(Exception):
    """A cache file exists but cannot be used."""


def default_cache_dir() -> Path:
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    try:
        import folder_paths  # ComfyUI

        return Path(folder_paths.models_dir) / "text_cache"
    except ImportError:
        return Path.home() / ".cache" / "steadydancer" / "text-cache"


def _check_sha(sha: str) -> str:
    sha = (sha or "").strip().lower()
    if len(sha) != 64 or not set(sha) <= _HEX:
        raise ValueError(f"encoder sha256 must be 64 hex digits, got {sha!r}")
    return sha


def entry_key(prompt: str, encoder_sha256: str) -> str:
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    blob = json.dumps({"v": 1, "prompt": prompt, "encoder_sha256": _check_sha(encoder_sha256)}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def entry_path(prompt: str, encoder_sha256: str, cache_dir: Path | str | None = None) -> Path:
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return d / f"{entry_key(prompt, encoder_sha256)}.safetensors"


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(16 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path | str, cache_dir: Path | str | None = None) -> str:
    """sha256 of a file, memoised by (absolute path, size, mtime_ns) in ``encoders.json``."""
    p = Path(path).resolve()
    if not p.is_file():
        raise FileNotFoundError(f"text encoder file not found: {p}")
    st = p.stat()
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    memo_file = d / "encoders.json"
    with _memo_lock:
        try:
            memo = json.loads(memo_file.read_text())
            if not isinstance(memo, dict):
                memo = {}
        except (OSError, ValueError):
            memo = {}
        rec = memo.get(str(p))
        if isinstance(rec, dict) and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
            try:
                return _check_sha(rec.get("sha256", ""))
            except ValueError:
                pass
        sha = _hash_file(p)
        memo[str(p)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
        try:
            _atomic_write_bytes(memo_file, json.dumps(memo, indent=1, sort_keys=True).encode())
        except OSError as e:  # a read-only cache dir must not stop encoding
            log.warning("steadydancer text cache: cannot record the encoder hash in %s: %s", memo_file, e)
        return sha


def _atomic_write_bytes(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_entry(
    prompt: str, encoder_sha256: str, cond: torch.Tensor, pooled_output: torch.Tensor | None = None, extras: dict | None = None, encoder_name: str = "", cache_dir: Path | str | None = None
) -> Path:
    """Store one conditioning tensor (and optional pooled output / extra tensors) atomically."""
    if not isinstance(cond, torch.Tensor) or cond.ndim != 3:
        raise ValueError(f"cond must be a [batch, tokens, dim] tensor, got {tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__}")
    dest = entry_path(prompt, encoder_sha256, cache_dir)
    tensors = {"cond": cond.detach().to("cpu").contiguous()}
    if pooled_output is not None:
        tensors["pooled_output"] = pooled_output.detach().to("cpu").contiguous()
    for k, v in (extras or {}).items():
        if isinstance(v, torch.Tensor):
            tensors[f"extra.{k}"] = v.detach().to("cpu").contiguous()
    meta = {"format": FORMAT, "prompt": prompt, "encoder_sha256": _check_sha(encoder_sha256), "encoder_name": encoder_name, "created": datetime.now(timezone.utc).isoformat()}
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def read_entry(prompt: str, encoder_sha256: str, cache_dir: Path | str | None = None):
    """The cached conditioning ``[[cond, {"pooled_output": ..., extras...}]]`` or None on a miss.

    Raises CorruptEntry when the file exists but is unreadable or does not belong to the key."""
    path = entry_path(prompt, encoder_sha256, cache_dir)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for a damaged file
        raise CorruptEntry(f"{path}: {e}") from e
    if meta.get("format") != FORMAT:
        raise CorruptEntry(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("prompt") != prompt or meta.get("encoder_sha256") != _check_sha(encoder_sha256):
        raise CorruptEntry(f"{path}: the entry's prompt/encoder hash do not match its key")
    if "cond" not in tensors or tensors["cond"].ndim != 3:
        raise CorruptEntry(f"{path}: no [batch, tokens, dim] 'cond' tensor")
    opts = {}
    if "pooled_output" in tensors:
        opts["pooled_output"] = tensors["pooled_output"]
    for k, v in tensors.items():
        if k.startswith("extra."):
            opts[k[len("extra.") :]] = v
    return [[tensors["cond"], opts]]


def load_text_encoder(path: str):
    """Load a Wan (umt5-xxl) text encoder the way ComfyUI's CLIPLoader does with type "wan"."""
    import comfy.sd
    import folder_paths

    return comfy.sd.load_clip(ckpt_paths=[path], embedding_directory=folder_paths.get_folder_paths("embeddings"), clip_type=comfy.sd.CLIPType.WAN)


def encode_with(clip, prompt: str):
    return clip.encode_from_tokens_scheduled(clip.tokenize(prompt))


class CachedTextEncoder:
    """Encodes prompts through the cache; loads the encoder (once) only on a miss."""

    def __init__(self, encoder_path: str | None, encoder_sha256: str | None = None, cache_dir: Path | str | None = None, loader=None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.encoder_path = encoder_path
        if encoder_sha256:
            self.sha = _check_sha(encoder_sha256)
        elif encoder_path:
            self.sha = file_sha256(encoder_path, self.cache_dir)
        else:
            raise ValueError("CachedTextEncoder needs the encoder file or its sha256")
        self._loader = loader or load_text_encoder
        self._clip = None

    def _encoder(self):
        if self._clip is None:
            if not self.encoder_path or not Path(self.encoder_path).is_file():
                raise FileNotFoundError(
                    f"text encoder file {self.encoder_path!r} is needed to encode a prompt that is not in the text cache ({self.cache_dir}); fetch it with `steadydancer models download`"
                )
            self._clip = self._loader(self.encoder_path)
        return self._clip

    def encode(self, prompt: str):
        try:
            hit = read_entry(prompt, self.sha, self.cache_dir)
        except CorruptEntry as e:
            log.warning("steadydancer text cache: corrupt entry, encoding again: %s", e)
            hit = None
        if hit is not None:
            return hit
        cond = encode_with(self._encoder(), prompt)
        c, opts = cond[0][0], cond[0][1]
        try:
            write_entry(
                prompt, self.sha, c, opts.get("pooled_output"), {k: v for k, v in opts.items() if k != "pooled_output"}, Path(self.encoder_path).name if self.encoder_path else "", self.cache_dir
            )
        except OSError as e:
            log.warning("steadydancer text cache: cannot write to %s: %s", self.cache_dir, e)
        return cond
