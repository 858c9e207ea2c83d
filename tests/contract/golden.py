"""Golden response bodies: the exact bytes the gateway sends, with run-specific values masked.

A golden file `golden/<name>.json` holds one response body exactly as sent (compact JSON, key
order and all) after masking, plus one trailing newline. Masking keeps the JSON type visible:
a string id becomes `"<ID>"`, a numeric id a bare `<ID>`, so a number sent where the contract
wants a string (or the reverse) still fails the comparison.

| Value | Becomes |
| --- | --- |
| RFC 3339 UTC timestamps (`2026-08-19T15:02:20.123456Z`) | `<TS>` |
| 15+ digit integers (snowflake ids, as strings or numbers) | `<ID>` |
| values of `duration_seconds`, `duration_human`, `duration_ms` | `<DUR>` |
| values of `worker_id` (host and pid of the worker) | `<WORKER>` |

Only the `Z` form of timestamps is masked: `+00:00` or naive times stay visible and fail.
Run `pytest tests/contract --update-golden` to rewrite the files, then review every change
against http-api.md before keeping it.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

_MASKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z"), "<TS>"),
    (re.compile(r'("duration_(?:seconds|ms)":)-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?'), r"\1<DUR>"),
    (re.compile(r'("duration_human":)"[^"]*"'), r'\1"<DUR>"'),
    (re.compile(r'("worker_id":)"[^"]*"'), r'\1"<WORKER>"'),
    (re.compile(r"(?<![\d.])\d{15,}(?![\d.])"), "<ID>"),
]


def mask(body: str, extra: dict[str, str] | None = None) -> str:
    """`body` with the run-specific values replaced; `extra` maps literal strings to placeholders first."""
    for literal, placeholder in (extra or {}).items():
        body = body.replace(literal, placeholder)
    for pattern, replacement in _MASKS:
        body = pattern.sub(replacement, body)
    return body


def _readable(text: str) -> list[str]:
    """The text cut after each `,` `{` `[` so a difference shows as a few short lines."""
    return re.split(r"(?<=[,{\[])", text)


class GoldenFiles:
    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        """Compares the masked `body` with golden/<name>.json, or rewrites the file in update mode.

        Raises:
            AssertionError: the bytes differ, or the golden file is missing.
        """
        path = GOLDEN_DIR / f"{name}.json"
        actual = mask(body.decode("utf-8"), extra)
        if self.update:
            GOLDEN_DIR.mkdir(exist_ok=True)
            path.write_text(actual + "\n", encoding="utf-8")
            return
        if not path.is_file():
            raise AssertionError(
                f"no golden file {path}; run pytest tests/contract --update-golden and review it"
            )
        expected = path.read_text(encoding="utf-8").removesuffix("\n")
        if actual != expected:
            diff = "\n".join(
                difflib.unified_diff(
                    _readable(expected), _readable(actual), f"golden/{name}.json", "response", lineterm=""
                )
            )
            raise AssertionError(f"response differs from golden/{name}.json (masked):\n{diff}")
