"""tests/e2e/test_run_failures.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_run_failures import *  # noqa: F403
