"""tests/e2e/test_cancel_finalize_rerun.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_cancel_finalize_rerun import *  # noqa: F403
