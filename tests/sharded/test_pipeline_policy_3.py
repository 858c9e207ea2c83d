"""tests/e2e/test_pipeline_policy.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_pipeline_policy import *  # noqa: F403
