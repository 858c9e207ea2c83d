"""Value-based redaction of a command's resolved secrets, and the gateway's display filter
(data-model.md §9.10)."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse

from gateway_http.redaction import redact as display_filter
from worker.credentials import REDACTED, CommandSecrets

SECRET = 'p@ss w/"rd+é'
RAW = SECRET.encode()


def remembered() -> CommandSecrets:
    secrets = CommandSecrets()
    secrets.remember({"host": "db.example.org", "user": "svc", "password": SECRET})
    return secrets


def test_every_common_encoding_of_a_secret_is_replaced_whole_and_inside_text() -> None:
    forms = [
        SECRET,
        base64.b64encode(RAW).decode(),
        base64.b64encode(RAW).decode().rstrip("="),
        base64.urlsafe_b64encode(RAW).decode(),
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        RAW.hex(),
        RAW.hex().upper(),
    ]
    secrets = remembered()
    assert secrets.redact({"forms": forms}) == {"forms": [REDACTED] * len(forms)}
    assert secrets.redact([f"dsn=postgres://svc:{form}@db" for form in forms]) == [
        f"dsn=postgres://svc:{REDACTED}@db"
    ] * len(forms)


def test_values_under_connection_keys_and_look_alike_data_are_left_alone() -> None:
    data = {
        "host": "db.example.org",
        "blob": base64.b64encode(bytes(range(200))).decode(),
        "sha": hashlib.sha256(b"x").hexdigest(),
        "token_count": 5,
        "password_policy": "min 12 chars",
        "nested": {"secret_santa": ["ann", "bob"]},
        "big": 2**63 - 1,
    }
    assert remembered().redact(data) == data


def test_a_crash_traceback_is_redacted_before_it_is_logged() -> None:
    secrets = remembered()
    try:
        raise ValueError(f"cannot connect with {base64.b64encode(RAW).decode()}")
    except ValueError as exc:
        text = secrets.crash_text(exc)
    assert "ValueError: cannot connect with [REDACTED]" in text
    assert base64.b64encode(RAW).decode() not in text


def test_a_short_secret_is_only_replaced_as_a_whole_value() -> None:
    secrets = CommandSecrets()
    secrets.remember("abc")
    assert secrets.redact({"v": "abc", "text": "abcdef", "hex": "616263"}) == {
        "v": REDACTED,
        "text": "abcdef",
        "hex": "616263",
    }


def test_the_display_filter_hides_what_looks_secret_but_is_only_a_view() -> None:
    shown = {"token_count": 5, "blob": "QUJD" * 20, "rows": [1, 2], "text": "hello"}
    assert display_filter(shown) == {
        "token_count": REDACTED,
        "blob": REDACTED,
        "rows": [1, 2],
        "text": "hello",
    }
    assert shown["token_count"] == 5  # a copy: the value given is not changed
