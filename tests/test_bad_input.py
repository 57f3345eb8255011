"""The bad-input battery: every case exits non-zero with one line naming the file, key or value,
and leaves nothing that looks complete (no done.json, no output file, no stray temporary)."""

from __future__ import annotations

import errno
import gzip
import http.client
import os
import pathlib
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

import pytest
import yaml

from reproduce.cli import main
from reproduce.data import write_generated

ROOT = Path(__file__).resolve().parents[1]

GOOD = {
    "name": "bad-input", "scale": "test", "seed": 1,
    "data": {"primary": "toy", "augment": False},
    "model": {"name": "small_cnn"},
    "method": {"name": "at"},
    "attack": {"eps": "8/255", "step_size": "2/255", "steps": 1},
    "optim": {"lr": 0.05},
    "schedule": {"kind": "constant"},
    "epochs": 1, "batch_size": 16,
}


# faults injected by a case (a full disk, a read-only directory, a dropped connection) are undone
# after it; running as root, chmod cannot make a directory read-only, so the OS error is simulated
FAULTS = pytest.MonkeyPatch()


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)
    yield
    FAULTS.undo()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_generated("toy", root, num_classes=4, image_size=8, n_train=32, n_test=16, domain=0)
    return root


def _train(tmp: Path, root: Path, cfg: dict | str, **extra: str) -> list[str]:
    path = tmp / "run.yaml"
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return ["train", "--config", str(path), "--out", str(tmp / "out"), "--data-root", str(root),
            "--device", "cpu", "--no-progress"]


def _with(**over) -> dict:
    cfg = yaml.safe_load(yaml.safe_dump(GOOD))
    for dotted, value in over.items():
        node = cfg
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def _trained(tmp: Path, root: Path) -> Path:
    run = tmp / "trained"
    assert main(_train(tmp, root, GOOD)[:4] + [str(run), "--data-root", str(root), "--device", "cpu",
                                               "--no-progress"]) == 0
    return run


def _eval(run: Path, root: Path, *args: str) -> list[str]:
    return ["evaluate", "--run", str(run), "--data-root", str(root), "--device", "cpu", "--n", "8", *args]


# case id -> (argv builder, words the one-line error must contain)
Case = Callable[[Path, Path], list[str]]
CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    "malformed YAML": (lambda t, r: _train(t, r, "name: [unclosed\n"), ("run.yaml", "invalid YAML")),
    "config not a mapping": (lambda t, r: _train(t, r, "- a\n- b\n"), ("run.yaml", "mapping")),
    "unknown top-level key": (lambda t, r: _train(t, r, _with(epochz=3)), ("epochz",)),
    "unknown method": (lambda t, r: _train(t, r, _with(method__name="madry")), ("madry",)),
    "unknown method option": (lambda t, r: _train(t, r, _with(method__betta=6.0)), ("betta",)),
    "unknown model": (lambda t, r: _train(t, r, _with(model__name="resnet9000")), ("resnet9000",)),
    "unknown dataset": (lambda t, r: _train(t, r, _with(data__primary="cifar11")), ("cifar11",)),
    "wrong type": (lambda t, r: _train(t, r, _with(epochs="ten")), ("epochs", "ten")),
    "epochs 0": (lambda t, r: _train(t, r, _with(epochs=0)), ("epochs", "0")),
    "batch size 0": (lambda t, r: _train(t, r, _with(batch_size=0)), ("batch_size", "0")),
    "negative eps": (lambda t, r: _train(t, r, _with(attack__eps=-0.1)), ("eps", "-0.1")),
    "eps not a number": (lambda t, r: _train(t, r, _with(attack__eps="8/0")), ("eps", "8/0")),
    "bad amp mode": (lambda t, r: _train(t, r, _with(perf__amp="fp8")), ("perf.amp", "fp8")),
    "missing dataset": (lambda t, r: _train(t, r, _with(data__primary="cifar10")), ("cifar10",)),
    # a loss term weighted beyond float32 range is infinite from the first batch on
    "NaN loss": (lambda t, r: _train(t, r, _with(method={"name": "trades", "beta": 1e39})), ("bad-input",)),
    "infinite eps": (lambda t, r: _train(t, r, _with(attack__eps=float("inf"))), ("attack.eps", "finite")),
    "eps of 1e9": (lambda t, r: _train(t, r, _with(attack__eps=1e9)), ("attack.eps", "1000000000.0")),
    "negative attack steps": (lambda t, r: _train(t, r, _with(attack__steps=-3)), ("attack.steps", "-3")),
    "no attack step for AT": (lambda t, r: _train(t, r, _with(attack__steps=0)), ("attack.steps", ">= 1")),
    "negative learning rate": (lambda t, r: _train(t, r, _with(optim__lr=-0.1)), ("optim.lr", "-0.1")),
    "a billion epochs": (lambda t, r: _train(t, r, _with(epochs=10**9)), ("epochs", "10,000")),
    "evaluate on -5 images": (lambda t, r: _eval(_trained(t, r), r, "--protocol", "clean", "--out",
                                                 str(t / "e.json"), "--n", "-5"), ("--n", "-5")),
    "evaluate in batches of 0": (lambda t, r: _eval(_trained(t, r), r, "--protocol", "clean", "--out",
                                                    str(t / "e.json"), "--batch-size", "0"), ("--batch-size", "0")),
    "unknown protocol": (lambda t, r: _eval(t / "nothing", r, "--protocol", "pgd-typo", "--out", str(t / "e.json")),
                         ("pgd-typo",)),
    "run never trained": (lambda t, r: _eval(t / "nothing", r, "--protocol", "clean", "--out", str(t / "e.json")),
                          ("nothing",)),
    "labels do not match protocols": (lambda t, r: _eval(_trained(t, r), r, "--protocol", "clean,fgsm", "--label",
                                                         "clean", "--out-dir", str(t / "ev")), ("--label",)),
    "truncated checkpoint": (lambda t, r: _truncate(_trained(t, r), r), ("best.pt",)),
    "checkpoint of another config": (lambda t, r: _other_config(t, r), ("out",)),
    "unknown scale": (lambda t, r: ["plan", "results/table2.csv", "--scale", "hueg"], ("hueg",)),
    "train with neither plan nor config": (lambda t, r: ["train", "--out", str(t / "out")], ("--plan", "--config")),
    "plan file missing": (lambda t, r: ["train", "--plan", str(t / "no-plan.json")], ("no-plan.json", "missing")),
    "torn plan file": (lambda t, r: ["train", "--plan", _file(t, "torn.json", '{"kind": "run", "id"')],
                       ("torn.json", "not valid JSON")),
    "plan of another kind": (lambda t, r: ["train", "--plan", _file(t, "art.json", '{"kind": "artifact"}')],
                             ("art.json", "artifact")),
    "plan lacking keys": (lambda t, r: ["evaluate", "--plan", _file(t, "ev.json", '{"kind": "evaluation"}')],
                          ("ev.json", "lacks")),
    "unknown paper": (lambda t, r: ["render", "--paper", "nope", "--artifact", "x", "--work-dir", str(t / "w"),
                                    "--out", str(t / "x.csv")], ("nope",)),
    "unknown artifact": (lambda t, r: ["render", "--paper", "hat", "--artifact", "table99", "--out",
                                       str(t / "x.csv")], ("table99",)),
    "analysis plan missing": (lambda t, r: ["analyze", "--plan", str(t / "w/margin-nope.json"), "--data-root", str(r)],
                              ("margin-nope.json",)),
    "render before its inputs exist": (lambda t, r: ["render", "--paper", "hat", "--artifact", "table1", "--scale",
                                                     "smoke", "--work-dir", str(t / "w"), "--results-dir",
                                                     str(t / "res"), "--out", str(t / "res/t1.csv")],
                                       ("w/smoke/", "missing", "run the DAG")),
    "diff of a missing table": (lambda t, r: ["diff", "--paper", "biamat", "--artifact", "table2", "--regenerated",
                                              str(t / "none.csv"), "--work-dir", str(t / "w"), "--out",
                                              str(t / "d.diff.csv")], ("none.csv",)),
    "diff of mixed scales": (lambda t, r: _mixed(t), ("smoke", "paper")),
    "corrupted archive": (lambda t, r: _archive(t, b"not a tarball"), ("cifar-10-python.tar.gz", "md5")),
    "disk full at a checkpoint": (lambda t, r: _disk_full(t, r, "last.pt"), ("last.pt", "No space left")),
    "disk full writing a result": (lambda t, r: _disk_full(t, r, "e.json"), ("e.json", "No space left")),
    "read-only work dir": (lambda t, r: _read_only(t, r), ("out", "Read-only file system")),
    "interrupted download": (lambda t, r: _cut_download(t), ("cifar-10-python.tar.gz", "failed")),
}


def _truncate(run: Path, root: Path) -> list[str]:
    data = (run / "best.pt").read_bytes()
    (run / "best.pt").write_bytes(data[: len(data) // 3])
    return _eval(run, root, "--protocol", "clean", "--out", str(run.parent / "e.json"))


def _other_config(tmp: Path, root: Path) -> list[str]:
    run = _trained(tmp, root)
    (tmp / "out").mkdir()
    for f in ("last.pt", "config.yaml"):
        (tmp / "out" / f).write_bytes((run / f).read_bytes())
    return _train(tmp, root, _with(seed=2))  # resuming a directory that holds another config's run


def _mixed(tmp: Path) -> list[str]:
    p = tmp / "mixed.csv"
    p.write_text("row,clean,pgd100,cw100,aa,scale\ncifar10-at,80,50,49,48,smoke\ncifar10-trades,80,50,49,48,paper\n")
    return ["diff", "--paper", "biamat", "--artifact", "table2", "--regenerated", str(p), "--work-dir",
            str(tmp / "w"), "--out", str(tmp / "m.diff.csv")]


def _file(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


def _archive(tmp: Path, payload: bytes) -> list[str]:
    p = tmp / "cifar-10-python.tar.gz"
    p.write_bytes(gzip.compress(payload))
    return ["data", "import", "cifar10", "--from-archive", str(p), "--root", str(tmp / "prepared")]


def _disk_full(tmp: Path, root: Path, name: str) -> list[str]:
    """The disk fills when ``name`` is flushed (delayed allocation reports ENOSPC at fsync)."""
    fsync = os.fsync

    def full(fd: int) -> None:
        written = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        if written.startswith(f".{name}.") and not written.startswith(f".{name}.state"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    if name == "e.json":
        run = _trained(tmp, root)
        FAULTS.setattr(os, "fsync", full)
        return _eval(run, root, "--protocol", "clean", "--out", str(tmp / "e.json"))
    FAULTS.setattr(os, "fsync", full)
    return _train(tmp, root, GOOD)


def _read_only(tmp: Path, root: Path) -> list[str]:
    """Nothing can be created under the run directory ``out``."""
    ro = tmp / "out"
    mkdir, mkstemp = pathlib.Path.mkdir, tempfile.mkstemp

    def refuse(path: object) -> None:
        if str(path).startswith(str(ro)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def no_mkdir(self: Path, *a, **k) -> None:
        refuse(self)
        mkdir(self, *a, **k)

    def no_mkstemp(*a, **k):
        refuse(k.get("dir", ""))
        return mkstemp(*a, **k)

    FAULTS.setattr(pathlib.Path, "mkdir", no_mkdir)
    FAULTS.setattr(tempfile, "mkstemp", no_mkstemp)
    return _train(tmp, root, GOOD)


class _CutStream:
    """A response (no redirect, length announced) that delivers a few bytes, then loses the connection."""

    def __init__(self, request: object) -> None:
        self.url = getattr(request, "full_url", request)
        self.length = 170_000_000
        self.sent = False

    def read(self, n: int = -1) -> bytes:
        if self.sent:
            raise http.client.IncompleteRead(b"", 170_000_000)
        self.sent = True
        return b"\x1f\x8b partial"

    def __enter__(self) -> "_CutStream":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _cut_download(tmp: Path) -> list[str]:
    FAULTS.setattr(urllib.request, "urlopen", lambda request, *a, **k: _CutStream(request))
    return ["data", "import", "cifar10", "--download", "--root", str(tmp / "prepared")]


def test_the_battery_has_at_least_25_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_in_one_line_and_writes_nothing_complete(case, tmp_path, data_root, capsys):
    build, words = CASES[case]
    argv = build(tmp_path, data_root)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0, f"{case}: exited 0"
    lines = err.splitlines()
    # progress lines ("verifying ...") may come first; the error is one line, and the last
    assert [ln for ln in lines if ln.startswith("error: ")] == lines[-1:] and "Traceback" not in err, f"{case}: {err!r}"
    for w in words:
        assert w in lines[-1], f"{case}: {w!r} not in {lines[-1]!r}"
    assert not (tmp_path / "out" / "done.json").exists()
    assert not any(p.name.endswith((".tmp", ".partial", ".part")) or ".tmp." in p.name
                   for p in tmp_path.rglob("*")), case
    for out in ("e.json", "x.csv", "d.diff.csv", "m.diff.csv", "res/t1.csv"):
        assert not (tmp_path / out).exists(), f"{case}: {out} written"
