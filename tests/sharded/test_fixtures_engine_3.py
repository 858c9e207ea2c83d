"""tests/e2e/test_fixtures_engine.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_fixtures_engine import *  # noqa: F403
