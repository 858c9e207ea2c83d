"""tests/e2e/test_result_store.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_result_store import *  # noqa: F403
