"""ui.access: which addresses are loopback, and the password check."""

from __future__ import annotations

import hmac

import pytest

from ui import access


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_loopback_addresses(address: str) -> None:
    assert access.is_loopback(address)


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "myhost"])
def test_everything_else_is_exposed(address: str | None) -> None:
    assert not access.is_loopback(address)


def test_password_is_compared_with_compare_digest_on_equal_length_digests(monkeypatch) -> None:
    seen = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", spy)
    assert access.password_matches("s3cret", "s3cret")
    assert not access.password_matches("s3cre", "s3cret")
    assert not access.password_matches("", "s3cret")
    assert seen == [(32, 32)] * 3  # a short guess takes as long as a long one
