"""Fuzzing the golden files (CI share): mutated files through ``nmn check`` and every framework's ``load``.

Each example is a golden file mutated by :func:`tests.security.mutations.mutate` (bit flips, truncations,
insertions, and protobuf-aware changes of dims, data types, attribute values, names, the manifest, nodes,
opsets). Any exception that is not nmn's own one-line error, any hang (60 s alarm) and any memory blow-up
(peak RSS growing by more than 1.5 GiB) fails, and the input is saved to a temporary folder named in the
failure. ``NMN_FUZZ_EXAMPLES`` sets the examples per entry point (default 12, ``nmn check`` gets a third of
them: it runs the model in a child process); ``scripts/fuzz_files.py`` is the long run.
"""

from __future__ import annotations

import os
import resource
import signal
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.security.mutations import ENTRY_POINTS, GOLDEN, MUTATIONS, mutate, run_entry

_EXAMPLES = int(os.environ.get("NMN_FUZZ_EXAMPLES", "12"))
_PACKAGES = {
    "torch": "torch",
    "nnx": "flax.nnx",
    "linen": "flax.linen",
    "keras": "keras",
    "tf": "tensorflow",
    "mlx": "mlx.core",
}
_HANG_S = 60
_BLOWUP_BYTES = int(1.5 * 1024**3)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _save(data: bytes, name: str) -> str:
    folder = Path(tempfile.mkdtemp(prefix="nmn-fuzz-failure-"))
    path = folder / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_mutated_golden_files_get_nmn_errors_only(entry, tmp_path_factory):
    if entry in _PACKAGES:
        pytest.importorskip(_PACKAGES[entry])
    examples = max(1, _EXAMPLES // 3) if entry == "check" else _EXAMPLES
    work = tmp_path_factory.mktemp(f"fuzz_{entry}")
    counter = iter(range(10**9))

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(golden=st.sampled_from(GOLDEN), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(MUTATIONS))
    def one(golden, seed, kind):
        _, data = mutate(golden.read_bytes(), seed, kind)
        folder = work / f"case{next(counter)}"
        folder.mkdir()
        path = folder / golden.name
        path.write_bytes(data)
        label = f"{entry}: {golden.name} mutated by {kind!r} (seed {seed})"
        before = _peak_rss()
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(_HANG_S)
        try:
            outcome, message = run_entry(entry, str(path))
        except _Hang:
            pytest.fail(f"{label}: no answer within {_HANG_S} s; input saved to {_save(data, golden.name)}")
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        grown = _peak_rss() - before
        if grown > _BLOWUP_BYTES:
            pytest.fail(
                f"{label}: peak memory grew by {grown / 1024**3:.2f} GiB; input saved to {_save(data, golden.name)}"
            )
        if outcome == "foreign":
            pytest.fail(
                f"{label}: not nmn's own one-line error: {message[:2000]}; input saved to {_save(data, golden.name)}"
            )

    one()
