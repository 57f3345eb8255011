"""The import contract in pyproject.toml ([tool.importlinter]): layers point one way.

The check itself is `lint-imports`; these tests keep it honest: it passes on the tree as it is,
and it fails, naming the import, when a lower layer is made to import a higher one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[test]')")


def _lint(root: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first, so the package analysed is the one under `root`, not an installed copy
    return subprocess.run([str(LINT), "--no-cache", "--no-logo"], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "tree"
    dst.mkdir()
    shutil.copytree(ROOT / "reproduce", dst / "reproduce", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_the_tree_keeps_the_contract() -> None:
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


@pytest.mark.parametrize("low, high", [
    ("reproduce/data/feeding/holdout.py", "reproduce.pipeline.dag"),   # library -> pipeline
    ("reproduce/methods/hat.py", "reproduce.train.refs"),       # contracts -> train
    ("reproduce/train/loop.py", "reproduce.jobs.evaluate"),     # train -> jobs
    ("reproduce/io.py", "reproduce.config"),                   # base -> contracts
])
def test_a_planted_upward_import_breaks_it(tmp_path: Path, low: str, high: str) -> None:
    tree = _copy(tmp_path)
    f = tree / low
    f.write_text(f.read_text() + f"\n\ndef _planted() -> None:\n    import {high}  # noqa: F401\n")
    out = _lint(tree)
    assert out.returncode != 0, out.stdout[-2000:]
    low_mod = low[:-3].replace("/", ".")
    assert "BROKEN" in out.stdout and f"{low_mod} -> {high}" in out.stdout, out.stdout[-2000:]


def test_the_config_layer_names_every_optimizer_the_trainer_builds() -> None:
    """The run-config schema checks optim.name itself (it may not import the trainer): one list each side."""
    from reproduce.config import OPTIMIZERS
    from reproduce.train.optim import OPTIMIZERS as BUILT

    assert tuple(BUILT) == OPTIMIZERS
