"""kernel.heap.settle, in a process of its own (it changes the interpreter's collector for good)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kernel import heap

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import gc, json
from kernel import heap
before = gc.get_freeze_count()
heap.settle()
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "thresholds": gc.get_threshold()}))
"""


def test_settle_freezes_what_start_up_built_and_collects_the_young_generation_less_often() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found["before"] == 0
    assert found["frozen"] > 1000  # the imported modules' objects at least
    assert tuple(found["thresholds"]) == heap.THRESHOLDS != (700, 10, 10)
