"""The golden generator reproduces the committed goldens bit for bit (needs the official source)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def test_goldens_size_budget():
    total = sum(p.stat().st_size for p in (HERE / "golden").iterdir())
    assert total < 3 * 2**20, f"goldens are {total} bytes (budget 3 MiB)"


def test_regeneration_is_bit_identical(official_source, tmp_path):
    r = subprocess.run([sys.executable, str(HERE / "make_goldens.py"), "--out", str(tmp_path),
                        "--source", str(official_source)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    new, old = np.load(tmp_path / "parity.npz"), np.load(HERE / "golden" / "parity.npz")
    assert sorted(new.files) == sorted(old.files)
    m_new, m_old = json.loads(str(new["meta"])), json.loads(str(old["meta"]))
    m_new.pop("torch"), m_old.pop("torch")
    assert m_new == m_old
    for k in old.files:
        if k != "meta":
            a, b = new[k], old[k]
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), f"{k} differs"
