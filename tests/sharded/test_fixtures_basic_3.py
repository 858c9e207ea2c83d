"""tests/e2e/test_fixtures_basic.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_fixtures_basic import *  # noqa: F403
