"""Suite-wide pytest hooks: say at once what the first, silent half-minute of a run is spent on.

Collecting the suite imports every framework (the conformance adapters import torch, TensorFlow/Keras, JAX/Flax
and MLX to build their case tables), which takes 25-35 s on a 2-core machine before the first result appears,
and longer on a loaded one; under ``pytest -n N`` every worker does it. These hooks print one line when the run
starts and, under xdist, one line per worker when its collection is done, so the wait is explained and visible.
"""

from __future__ import annotations

import time

import pytest

_START = time.monotonic()


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session):
    config = session.config
    if _is_xdist_worker(config) or config.option.collectonly:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    workers = getattr(config.option, "numprocesses", None)
    who = "each worker first imports" if workers else "this first imports"
    reporter.write_line(
        f"nmn: collecting the tests (for the whole suite {who} torch, TensorFlow/Keras, JAX/Flax and MLX: "
        "about 30 s on 2 CPU cores, more under load, before the first result)"
    )


@pytest.hookimpl(optionalhook=True)  # the hook exists only where pytest-xdist is installed
def pytest_xdist_node_collection_finished(node, ids):
    """Under xdist (controller side): one line per worker when it has collected."""
    reporter = node.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"nmn: {node.gateway.id} collected {len(ids)} tests after {time.monotonic() - _START:.0f} s; running"
        )
