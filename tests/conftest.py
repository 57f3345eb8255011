"""Shared fixtures. The real CIFAR-10 tree is unpacked once per cache, not per test run."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _cifar10_jpeg_archive() -> Path:
    # CI checks out the repository with ../shared beside it.
    env = os.environ.get("REPRODUCE_CIFAR10_JPEG")
    return Path(env) if env else REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


@pytest.fixture(scope="session")
def cifar10_jpeg_tree(request: pytest.FixtureRequest) -> Path:
    """The real CIFAR-10 image-folder tree (train/<class>/*.jpg, test/<class>/*.jpg).

    Unpacked once into ``$REPRODUCE_TEST_CACHE`` (else the pytest cache) and
    reused; skipped when the archive is not available.
    """
    archive = _cifar10_jpeg_archive()
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 tree not available: {archive} is missing (set REPRODUCE_CIFAR10_JPEG)")
    cache = os.environ.get("REPRODUCE_TEST_CACHE")
    if cache:
        base = Path(cache)
    elif getattr(request.config, "cache", None) is not None:
        base = Path(request.config.cache.mkdir("reproduce-data"))
    else:  # pytest run with -p no:cacheprovider
        base = Path(tempfile.gettempdir()) / "reproduce-test-cache"
    tree = base / "cifar10-jpeg"
    stamp = tree / ".complete"
    if not stamp.exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".cifar10-jpeg.", dir=base))
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            # The archive may or may not wrap the tree in one top-level folder.
            inner = tmp if (tmp / "train").is_dir() else next(p for p in tmp.iterdir() if (p / "train").is_dir())
            (inner / ".complete").write_text(str(archive))
            if tree.exists():
                shutil.rmtree(tree)
            os.replace(inner, tree)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return tree


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors gain nothing from threads, and on a shared 2-core box they oversubscribe."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
