"""Which broker and database the tests use (tests/support/infra.py)."""

from __future__ import annotations

import pytest

from tests.support.infra import choose


@pytest.mark.parametrize(
    ("mode", "docker", "expected"),
    [
        (None, False, "embedded"),
        (None, True, "containers"),
        ("auto", True, "containers"),
        ("embedded", True, "embedded"),
        ("containers", False, "containers"),  # asked for: fails loudly later if no engine
    ],
)
def test_choose(mode: str | None, docker: bool, expected: str) -> None:
    assert choose(mode, docker=docker) == expected


def test_unknown_mode_says_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="expected one of auto, embedded, containers"):
        choose("kind", docker=False)
