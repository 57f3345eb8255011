"""Every `snakemake ...` and `reproduce ...` command the docs and comments show works as printed.

Commands are extracted from README files (code spans and blocks), comments in the
Snakefile, Makefile, config and profile files, and the Makefile's recipes; snakemake
commands run as dry runs (``-n``), reproduce commands in a cheap form. Commands that
need data, archives or earlier outputs are skipped by an explicit list with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SKIP = {
    "reproduce data import": "imports an official archive (needs the files or internet)",
    "reproduce diff": "diffs a rendered table, which exists only after a run",
    "reproduce train": "trains a model",
    "reproduce evaluate --robustbench": "needs a zoo model's weights (robustbench downloads them, with internet)",
    "reproduce evaluate": "needs a trained run",
    "snakemake --report": "reports results that exist only after a run (tests/test_workflow.py builds one)",
}
PLACEHOLDER = re.compile(r"\b(NAME|DIR|PATH|FILE|HEX|P|S|RUN)\b|\.\.\.|<[^>]+>")
CMD = re.compile(r"(?:^|\$\(VENV\)/bin/)((?:snakemake|reproduce)(?=\s|$).*)")


def _sources() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "docs/GUIDE.md", ROOT / "Snakefile", ROOT / "Makefile"]
    files += sorted((ROOT / "pipelines").glob("*/README.md"))
    files += sorted((ROOT / "config").rglob("*.yaml")) + sorted((ROOT / "workflow").rglob("*.yaml"))
    files += sorted((ROOT / "workflow/rules").glob("*.smk"))
    return [f for f in files if f.exists()]


def _fragments(path: Path) -> list[str]:
    """Text that shows a command: code spans and code blocks in Markdown, comments and recipes elsewhere."""
    text = path.read_text()
    if path.suffix == ".md":
        blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        # a code span may wrap onto the next line of the paragraph
        out = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
        for block in blocks:
            out += block.splitlines()
        return out
    out = []
    for line in text.splitlines():
        if path.name == "Makefile" and line.startswith("\t"):
            out.append(line.strip())
        elif "#" in line:
            comment = line.split("#", 1)[1]
            spans = re.findall(r"`([^`\n]+)`", comment)
            out += spans or [comment]
    return out


def commands() -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    for path in _sources():
        for frag in _fragments(path):
            frag = frag.strip()
            m = CMD.match(frag)
            if not m:
                continue
            cmd = re.split(r"\s{2,}|\s+#", m.group(1))[0].strip()  # drop aligned trailing notes
            if len(cmd.split()) > 1 or cmd == "snakemake":
                found.setdefault(cmd, str(path.relative_to(ROOT)))
    return sorted(found.items())


def _skip_reason(cmd: str) -> str | None:
    for prefix, why in SKIP.items():
        if cmd.startswith(prefix):
            return why
    if PLACEHOLDER.search(cmd):
        return "a template with placeholders, not a command"
    return None


def test_the_extractor_finds_the_documented_commands():
    cmds = [c for c, _ in commands()]
    assert any(c.startswith("snakemake --cores 2 --rerun-incomplete --config scale=smoke --") for c in cmds)  # make demo
    assert any("--profile workflow/profiles/slurm" in c for c in cmds)
    assert "reproduce list" in cmds
    assert "reproduce plan results/table2.csv --scale paper" in cmds  # a span wrapped over two lines
    assert sum(c.startswith("snakemake") for c in cmds) >= 5
    # the old Snakefile comment would be caught: its target is swallowed by --config
    assert _run("snakemake --cores 2 --config scale=smoke results/table2.csv").returncode != 0


def _run(cmd: str) -> subprocess.CompletedProcess:
    # the user's profile is the documented copy of the tracked template: identical until edited
    cmd = cmd.replace("workflow/profiles/slurm-user", "workflow/profiles/slurm")
    argv = shlex.split(cmd)
    if argv[0] == "snakemake":
        argv = [str(BIN / "snakemake"), "-n", *argv[1:]]
    else:
        argv = [sys.executable, "-m", "reproduce", *argv[1:]]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("cmd, source", commands(), ids=[c for c, _ in commands()])
def test_command_works_as_printed(cmd, source):
    why = _skip_reason(cmd)
    if why:
        pytest.skip(f"{source}: {why}")
    r = _run(cmd)
    assert r.returncode == 0, f"{source}: `{cmd}` exited {r.returncode}:\n{(r.stdout + r.stderr)[-2000:]}"
