"""The file names our nodes default to are the ones docker/models.json (the single source of
truth for model files) puts in those ComfyUI folders."""

import json

import pytest

from pack_loader import PACK_DIR

MANIFEST = PACK_DIR.parent / "docker" / "models.json"


@pytest.fixture(scope="module")
def manifest():
    if not MANIFEST.is_file():
        pytest.skip(f"{MANIFEST} is absent (the models branch writes it)")
    return json.loads(MANIFEST.read_text())


def by_name(manifest):
    return {(f["folder"], f["filename"]): k for k, f in manifest["files"].items()}


def test_pose_model_names_are_in_the_manifest(manifest):
    import ast

    src = (PACK_DIR / "pose_extract.py").read_text()
    consts = {t.id: n.value.value for n in ast.parse(src).body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    names = by_name(manifest)
    assert ("detection", consts["DETECTOR_FILE"]) in names
    assert ("detection", consts["POSE_FILE"]) in names


def test_text_encoder_and_lora_names_are_in_the_manifest(manifest):
    import ast

    names = by_name(manifest)
    src = (PACK_DIR / "nodes_textcache.py").read_text()
    known = next(n.value for n in ast.parse(src).body if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "KNOWN_ENCODERS" for t in n.targets))
    for name in ast.literal_eval(known):
        assert ("text_encoders", name) in names, name
    doc = (PACK_DIR / "nodes_guidance.py").read_text()
    loras = [f for (folder, f) in names if folder == "loras"]
    assert any(f in doc for f in loras), "the fast preset's LoRA named in nodes_guidance.py is not in the manifest"
