"""Shared fixtures: the harness package on sys.path, built kernels."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pksmtb import paths  # noqa: E402


def built(name: str) -> Path:
    """The kernel binary of build NAME; a missing build is an error, not a skip."""
    binary = paths.KBUILD / name / "linux"
    if not binary.is_file() or not (paths.ROOTFS / "init").is_file():
        pytest.fail(f"{binary} or the rootfs is missing: run 'make kernels rootfs' first")
    return binary


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"
