"""The generated documents are current: the code is the contract, the docs follow it."""

from __future__ import annotations

from pathlib import Path

from outbound_core import asyncapi, configdoc
from outbound_core.events import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_asyncapi_document_is_generated_from_the_current_models() -> None:
    assert (ROOT / "docs" / "asyncapi.yaml").read_text() == asyncapi.render(), (
        "docs/asyncapi.yaml is stale: run `make docs`"
    )


def test_every_event_type_is_documented_on_a_topic() -> None:
    documented = {m.TYPE for models in asyncapi.TOPIC_EVENTS.values() for m in models}
    assert documented == set(EVENT_TYPES)


def test_configuration_reference_is_current() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    assert configdoc.inject(text) == text, "docs/operations.md is stale: run `make docs`"
