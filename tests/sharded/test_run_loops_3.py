"""tests/e2e/test_run_loops.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_run_loops import *  # noqa: F403
