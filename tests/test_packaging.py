"""What the built distribution holds: the licence text, declared in the metadata."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_licence(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: the build leaves files behind in the tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "pgwire_pubsub", source / "pgwire_pubsub",
                    ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
         str(source)], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 and "No matching distribution found for setuptools" in proc.stderr:
        pytest.skip("pip cannot get the build backend (setuptools) here")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("pgwire_pubsub-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        dist_info = metadata.rsplit("/", 1)[0]
        assert zf.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        headers = zf.read(metadata).decode("utf-8").split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in headers
    assert "License-File: LICENSE" in headers
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
