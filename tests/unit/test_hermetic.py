"""Tests reach nothing they did not start, and do not pass by skipping in CI (tests/helpers)."""

from __future__ import annotations

import dataclasses

import pytest

from gateway_http.settings import GatewaySettings
from tests.helpers.nowhere import NOWHERE, NOWHERE_ENV
from tests.helpers.shared import fixture_file


def test_nowhere_covers_every_address_the_gateway_reads() -> None:
    settings = GatewaySettings.load(NOWHERE_ENV)
    addresses = {
        field.name: getattr(settings, field.name)
        for field in dataclasses.fields(settings)
        if field.name.endswith(("_addr", "_addrs"))
    }
    assert addresses == {
        "catalog_addr": NOWHERE,
        "execution_addrs": (NOWHERE,),
        "events_addrs": (NOWHERE,),
        "outbox_addrs": (NOWHERE,),
        "secrets_addr": NOWHERE,
    }


def test_a_missing_shared_fixture_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        fixture_file("playbooks/no/such/fixture.yaml")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        fixture_file("playbooks/no/such/fixture.yaml")
