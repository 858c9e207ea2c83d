"""tests/e2e/test_sse.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_sse import *  # noqa: F403
