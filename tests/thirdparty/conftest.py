"""Session fixtures of the third-party graph tests: each file is made once per session, in a pytest tmp folder."""

from __future__ import annotations

import os

import pytest

from tests.thirdparty import graphs

HEAVY = os.environ.get("NMN_HEAVY_TESTS", "") not in ("", "0")


@pytest.fixture(scope="session")
def thirdparty_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("thirdparty")


@pytest.fixture(scope="session")
def thirdparty_files(thirdparty_dir):
    """``get(graph) -> path``: the file of ``graph``, made on first use (a failure to make it is re-raised for
    every test of that graph, with the exporter's output)."""
    made: dict = {}

    def get(graph: graphs.Graph):
        if graph.id not in made:
            try:
                made[graph.id] = graphs.make(graph, thirdparty_dir)
            except Exception as err:
                made[graph.id] = err
        if isinstance(made[graph.id], Exception):
            raise made[graph.id]
        return made[graph.id]

    return get
