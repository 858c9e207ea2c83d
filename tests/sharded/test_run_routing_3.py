"""tests/e2e/test_run_routing.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_run_routing import *  # noqa: F403
