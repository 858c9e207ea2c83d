"""tests/e2e/test_fixtures_tools.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_fixtures_tools import *  # noqa: F403
