"""Text-conditioning cache: key, hit without loading the encoder, miss encodes once and writes
atomically, corrupt entries re-encoded with a warning, configurable directory, node behaviour.

The real Wan text encoder (umt5-xxl, 11 GB, architecture fixed in ComfyUI's config) cannot run
on a CPU test machine; a miss is exercised with a small stand-in encoder object that has the
CLIP interface ComfyUI's CLIPLoader returns (tokenize + encode_from_tokens_scheduled)."""

import hashlib
import logging
import os

import pytest
import torch

from pack_loader import pack_module

tc = pack_module("text_cache")


class FakeClip:
    """Deterministic stand-in for comfy.sd.CLIP: encodes a prompt to [1, len, 8]."""

    def __init__(self):
        self.encodes = []

    def tokenize(self, text):
        return {"t": [ord(c) for c in text] or [0]}

    def encode_from_tokens_scheduled(self, tokens):
        self.encodes.append(tokens)
        ids = torch.tensor(tokens["t"], dtype=torch.float32)
        cond = (ids[:, None] * torch.arange(1, 9, dtype=torch.float32))[None] / 100.0
        return [[cond.to(torch.bfloat16), {"pooled_output": None, "attention_mask": torch.ones(1, len(ids))}]]


@pytest.fixture
def encoder_file(tmp_path):
    p = tmp_path / "enc" / "umt5_test.safetensors"
    p.parent.mkdir()
    p.write_bytes(os.urandom(4096))
    return p


def counting_loader(clip):
    calls = []

    def load(path):
        calls.append(path)
        return clip

    return load, calls


def test_key_is_prompt_and_encoder_hash(tmp_path):
    a, b = "a" * 64, "b" * 64
    p1 = tc.entry_path("dance", a, tmp_path)
    assert p1 == tc.entry_path("dance", a.upper(), tmp_path)
    assert p1 != tc.entry_path("dance ", a, tmp_path)
    assert p1 != tc.entry_path("dance", b, tmp_path)
    expect = hashlib.sha256(b'{"encoder_sha256": "' + a.encode() + b'", "prompt": "dance", "v": 1}').hexdigest()
    assert p1.name == expect + ".safetensors"
    with pytest.raises(ValueError, match="64 hex"):
        tc.entry_path("dance", "xyz", tmp_path)


def test_write_read_roundtrip_and_format(tmp_path):
    from safetensors import safe_open

    sha = "c" * 64
    cond = torch.randn(1, 5, 16).to(torch.float16)
    path = tc.write_entry("hello", sha, cond, extras={"attention_mask": torch.ones(1, 5), "note": "x"}, encoder_name="umt5.safetensors", cache_dir=tmp_path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        assert set(f.keys()) == {"cond", "extra.attention_mask"}
    assert meta["format"] == "steadydancer-text-cache/1" and meta["prompt"] == "hello"
    assert meta["encoder_sha256"] == sha and meta["encoder_name"] == "umt5.safetensors"
    out = tc.read_entry("hello", sha, tmp_path)
    assert len(out) == 1
    torch.testing.assert_close(out[0][0], cond)
    assert out[0][0].dtype == torch.float16
    assert torch.equal(out[0][1]["attention_mask"], torch.ones(1, 5))
    assert tc.read_entry("other", sha, tmp_path) is None
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    with pytest.raises(ValueError, match="tokens"):
        tc.write_entry("x", sha, torch.zeros(5, 16), cache_dir=tmp_path)


def test_hit_never_loads_the_encoder(tmp_path, encoder_file):
    sha = tc.file_sha256(encoder_file, tmp_path)
    assert sha == hashlib.sha256(encoder_file.read_bytes()).hexdigest()
    cond = torch.randn(1, 3, 8)
    tc.write_entry("seeded prompt", sha, cond, cache_dir=tmp_path)

    def never(path):
        raise AssertionError("the text encoder loader must not be called on a cache hit")

    enc = tc.CachedTextEncoder(str(encoder_file), cache_dir=tmp_path, loader=never)
    out = enc.encode("seeded prompt")
    torch.testing.assert_close(out[0][0], cond)
    # a hit needs no encoder file at all when its hash is given
    enc2 = tc.CachedTextEncoder(None, encoder_sha256=sha, cache_dir=tmp_path, loader=never)
    torch.testing.assert_close(enc2.encode("seeded prompt")[0][0], cond)


def test_miss_encodes_once_then_hits(tmp_path, encoder_file):
    clip = FakeClip()
    load, calls = counting_loader(clip)
    enc = tc.CachedTextEncoder(str(encoder_file), cache_dir=tmp_path, loader=load)
    first = enc.encode("step left")
    again = enc.encode("step left")
    assert len(clip.encodes) == 1 and calls == [str(encoder_file)]
    torch.testing.assert_close(again[0][0], first[0][0])
    # a fresh process (new object) hits the file written by the first
    enc3 = tc.CachedTextEncoder(str(encoder_file), cache_dir=tmp_path, loader=lambda p: pytest.fail("loaded"))
    torch.testing.assert_close(enc3.encode("step left")[0][0], first[0][0])
    entries = [p for p in tmp_path.iterdir() if p.suffix == ".safetensors"]
    assert len(entries) == 1 and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_failed_write_leaves_no_entry(tmp_path, monkeypatch):
    def broken_save(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tc, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        tc.write_entry("p", "d" * 64, torch.zeros(1, 2, 3), cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_entry_is_reencoded_with_warning(tmp_path, encoder_file, caplog):
    sha = tc.file_sha256(encoder_file, tmp_path)
    path = tc.entry_path("spin", sha, tmp_path)
    path.write_bytes(b"\x00garbage, not a safetensors file")
    clip = FakeClip()
    load, calls = counting_loader(clip)
    enc = tc.CachedTextEncoder(str(encoder_file), cache_dir=tmp_path, loader=load)
    with caplog.at_level(logging.WARNING, logger="steadydancer"):
        out = enc.encode("spin")
    assert "corrupt entry" in caplog.text and len(clip.encodes) == 1
    torch.testing.assert_close(tc.read_entry("spin", sha, tmp_path)[0][0], out[0][0])
    # an entry written for another key under this name is corrupt too
    other = tc.write_entry("other", sha, torch.zeros(1, 1, 8), cache_dir=tmp_path)
    os.replace(other, path)
    with pytest.raises(tc.CorruptEntry, match="do not match"):
        tc.read_entry("spin", sha, tmp_path)


def test_encoder_hash_memoised(tmp_path, encoder_file, monkeypatch):
    real = tc._hash_file
    n = []
    monkeypatch.setattr(tc, "_hash_file", lambda p: n.append(p) or real(p))
    s1 = tc.file_sha256(encoder_file, tmp_path)
    s2 = tc.file_sha256(encoder_file, tmp_path)
    assert s1 == s2 and len(n) == 1
    encoder_file.write_bytes(b"changed")
    assert tc.file_sha256(encoder_file, tmp_path) == hashlib.sha256(b"changed").hexdigest() and len(n) == 2
    with pytest.raises(FileNotFoundError):
        tc.file_sha256(tmp_path / "nope.safetensors", tmp_path)


def test_miss_without_encoder_file_names_the_command(tmp_path):
    enc = tc.CachedTextEncoder(None, encoder_sha256="e" * 64, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="steadydancer models download"):
        enc.encode("not cached")
    with pytest.raises(ValueError, match="sha256"):
        tc.CachedTextEncoder(None, cache_dir=tmp_path)


def test_cache_dir_env_and_default(monkeypatch, tmp_path, comfyui_source):
    monkeypatch.setenv("STEADYDANCER_TEXT_CACHE", str(tmp_path / "tc"))
    assert tc.default_cache_dir() == tmp_path / "tc"
    monkeypatch.delenv("STEADYDANCER_TEXT_CACHE")
    import folder_paths

    assert tc.default_cache_dir() == __import__("pathlib").Path(folder_paths.models_dir) / "text_cache"


def test_node_hit_and_missing_encoder(monkeypatch, tmp_path, encoder_file, comfyui_source):
    import folder_paths

    monkeypatch.setenv("STEADYDANCER_TEXT_CACHE", str(tmp_path / "cache"))
    folder_paths.add_model_folder_path("text_encoders", str(encoder_file.parent))
    nodes = pack_module("nodes_textcache")
    loads = []
    monkeypatch.setattr(tc, "load_text_encoder", lambda p: loads.append(p) or pytest.fail("encoder loaded"))
    sha = hashlib.sha256(encoder_file.read_bytes()).hexdigest()
    tc.write_entry("pos", sha, torch.ones(1, 2, 8), cache_dir=tmp_path / "cache")
    tc.write_entry("neg", sha, torch.zeros(1, 3, 8), cache_dir=tmp_path / "cache")
    out = nodes.SteadyDancerTextEncodeCached.execute(encoder_file.name, "pos", "neg")
    pos, neg = out.result
    assert torch.equal(pos[0][0], torch.ones(1, 2, 8)) and torch.equal(neg[0][0], torch.zeros(1, 3, 8))
    assert loads == []
    with pytest.raises(FileNotFoundError, match="steadydancer models download"):
        nodes.SteadyDancerTextEncodeCached.execute("absent_encoder.safetensors", "pos", "neg")
    schema = nodes.SteadyDancerTextEncodeCached.define_schema()
    assert [i.id for i in schema.inputs] == ["text_encoder", "positive_prompt", "negative_prompt", "encoder_sha256"]
