"""tests/e2e/test_run_context.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_run_context import *  # noqa: F403
