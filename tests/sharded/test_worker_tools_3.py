"""tests/e2e/test_worker_tools.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_worker_tools import *  # noqa: F403
