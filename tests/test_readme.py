"""Every code block of the README runs as written: the Python blocks in this interpreter, the shell blocks with
bash, all in README order in one temporary folder (each block creates what the next one uses, as for a reader).

The shell blocks run in a folder that looks like a checkout (links to the checkout's ``scripts``, ``models``,
``pyproject.toml``, ... ) so that what they write lands in the temporary folder. Lines that would change the
environment or cannot run inside the suite are replaced by a check of the same thing, listed in ``INSTEAD`` with
the reason; every other line runs as it is. ``text`` blocks are output or notation, not code.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
BLOCKS = [(lang, body) for lang, body in FENCE.findall(README.read_text())]
WAIT = 1800  # seconds for all shell blocks of one section; generous: the demo trains on a possibly loaded machine

# line (exactly as in the README) -> (what runs instead, why)
INSTEAD = {
    "python3 -m venv .venv && . .venv/bin/activate": (
        "true",
        "the suite already runs inside the environment these commands create",
    ),
    'pip install -e ".[test]"': (
        'python -m pip install --dry-run --no-index --no-build-isolation --disable-pip-version-check -e "$ROOT[test]"',
        "a real install would re-point this environment; pip's resolver proves offline that the checkout and its "
        "extras resolve from what is installed",
    ),
    'pip install -e ".[torch,serve]"    # in the checkout; drop -e for a normal install': (
        "true",
        "the same resolution is checked for the quick start's line",
    ),
    "python scripts/demo.py": (
        "python scripts/demo.py --epochs 1",
        "one epoch instead of ten; everything else as written, and its output is checked (see _check_demo)",
    ),
}
DEMO = "python scripts/demo.py"


def _check_demo(stdout: str, folder: Path) -> None:
    """What the demo promises: one accuracy in onnxruntime and every framework, logits within 1e-3 of
    onnxruntime's, the served file, a served answer equal to onnxruntime's, and its own time with the machine."""
    rows = dict(re.findall(r"^\| (\w+)\s+\| ([0-9.]+%)", stdout, re.M))
    assert set(rows) >= {"onnxruntime", "torch", "nnx", "linen", "keras", "tf", "mlx"}, stdout[-3000:]
    assert len(set(rows.values())) == 1, f"the demo's accuracies differ: {rows}"
    diffs = [float(d) for d in re.findall(r"^\| \w+\s+\| [0-9.]+%\s+\| ([0-9.e+-]+)\s+\|", stdout, re.M)]
    assert diffs and max(diffs) < 1e-3, f"the demo's max |diff| vs onnxruntime: {diffs}"
    served = re.search(r"^nmn serve: .* max \|diff\| vs onnxruntime ([0-9.e+-]+)", stdout, re.M)
    assert served and float(served.group(1)) < 1e-5, stdout[-1500:]
    assert re.search(r"^demo took \d+ s on \d+ CPU core", stdout, re.M), stdout[-500:]
    assert (folder / "out" / "demo" / "yat_mlp_torch.onnx").exists()


def _checkout_like(folder: Path) -> None:
    for entry in ROOT.iterdir():
        if entry.name.startswith(".") or entry.name in ("out", "build", "dist"):
            continue
        (folder / entry.name).symlink_to(entry)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shell(body: str, port: int) -> str:
    """The block with the ``INSTEAD`` lines replaced and the README's port 8000 by a free one (other servers may
    run on this machine)."""
    lines = []
    for line in body.splitlines():
        replacement = INSTEAD.get(line.strip())
        lines.append(
            replacement[0]
            if replacement
            else line.replace(":8000", f":{port}").replace("--port 8000", f"--port {port}")
        )
    return "\n".join(lines)


def test_every_block_is_code_or_marked_text():
    assert BLOCKS
    unknown = [body.splitlines()[0] for lang, body in BLOCKS if lang not in ("python", "bash", "text")]
    assert not unknown, f"README blocks without python/bash/text: {unknown}"
    assert any(DEMO in (ln.strip() for ln in body.splitlines()) for lang, body in BLOCKS if lang == "bash")
    for line in INSTEAD:  # a substitution that no longer matches a README line would silently stop applying
        assert any(line in (ln.strip() for ln in body.splitlines()) for lang, body in BLOCKS if lang == "bash"), line


def test_readme_blocks_run_in_order(tmp_path, monkeypatch):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (the serving block uses it)")
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    _checkout_like(tmp_path)
    monkeypatch.chdir(tmp_path)
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "ROOT": str(ROOT),
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    port = _free_port()
    for i, (lang, body) in enumerate(BLOCKS):
        where = f"README block {i} ({lang}, starting {body.splitlines()[0]!r})"
        if lang == "python":
            try:
                exec(compile(body, f"{README}:block{i}", "exec"), {"__name__": f"readme_block{i}"})
            except Exception as err:
                pytest.fail(f"{where} raised {type(err).__name__}: {err}")
        elif lang == "bash":
            script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + _shell(body, port)
            try:
                proc = subprocess.run(
                    ["bash", "-c", script], capture_output=True, text=True, timeout=WAIT, env=env, cwd=tmp_path
                )
            except subprocess.TimeoutExpired as err:
                pytest.fail(f"{where}: no end after {WAIT} s\n{err.stdout}\n{err.stderr}")
            assert proc.returncode == 0, (
                f"{where} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
            if any(line.strip() == DEMO for line in body.splitlines()):
                _check_demo(proc.stdout, tmp_path)
