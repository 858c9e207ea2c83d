"""tests/e2e/test_data_fidelity.py, unchanged, on the three-shard mesh (see conftest.py)."""

from tests.e2e.test_data_fidelity import *  # noqa: F403
