"""The event contract: envelopes, payload round trips and poison-message parsing."""

from __future__ import annotations

import json
import types
import typing
from datetime import UTC, datetime
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from outbound_core import events as ev
from outbound_core.events import (
    EVENT_TYPES,
    CallEnded,
    Envelope,
    Payload,
    TaskQueued,
    UnknownEventType,
    make_envelope,
)
from outbound_core.kafka import PoisonMessage, parse_envelope

AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _value(annotation: Any) -> Any:
    """A minimal valid value for a field annotation."""
    origin = get_origin(annotation)
    if origin is Literal:
        return get_args(annotation)[0]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _value(args[0])
    if origin is typing.Annotated:
        return _value(get_args(annotation)[0])
    if origin is list:
        (inner,) = get_args(annotation)
        return [_value(inner)]
    if origin is dict:
        return {}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _minimal(annotation)
    return {str: "x", int: 1, float: 1.5, bool: True, datetime: AT}[annotation]


def _minimal(model: type[BaseModel]) -> dict[str, Any]:
    return {name: _value(f.annotation) for name, f in model.model_fields.items() if f.is_required()}


def _envelope(payload: Payload, **kw: Any) -> Envelope:
    return make_envelope(
        payload, producer="tests", org_id="org_1", workspace_id="ws_1", occurred_at=AT, **kw
    )


def test_every_payload_class_is_registered() -> None:
    classes = {
        v
        for v in vars(ev).values()
        if isinstance(v, type) and issubclass(v, Payload) and v is not Payload
    }
    assert classes == set(EVENT_TYPES.values())
    assert all(EVENT_TYPES[m.TYPE] is m for m in classes)


@pytest.mark.parametrize("etype", sorted(EVENT_TYPES))
def test_payload_round_trip(etype: str) -> None:
    model = EVENT_TYPES[etype]
    payload = model.model_validate(_minimal(model))
    env = _envelope(payload)
    assert env.type == etype
    assert env.version == model.VERSION
    assert env.id.startswith("evt_")
    assert env.correlation_id == env.id
    assert env.causation_id is None
    assert env.payload() == payload
    # through the wire format too
    wire = parse_envelope(env.model_dump_json().encode())
    assert wire == env
    assert wire.payload() == payload
    assert type(wire.payload()) is model


@pytest.mark.parametrize("etype", sorted(EVENT_TYPES))
def test_payload_ignores_extra_fields(etype: str) -> None:
    model = EVENT_TYPES[etype]
    data = {**_minimal(model), "added_in_a_later_version": {"x": 1}}
    payload = model.model_validate(data)
    assert not hasattr(payload, "added_in_a_later_version")
    assert payload == model.model_validate(_minimal(model))


@pytest.mark.parametrize("etype", sorted(EVENT_TYPES))
def test_payload_missing_required_field_is_rejected(etype: str) -> None:
    model = EVENT_TYPES[etype]
    data = _minimal(model)
    if not data:
        pytest.skip("no required fields")
    data.pop(next(iter(data)))
    env = _envelope(model.model_validate(_minimal(model)))
    bad = env.model_copy(update={"data": data})
    with pytest.raises(ValidationError):
        bad.payload()


def test_payloads_are_frozen() -> None:
    p = TaskQueued.model_validate(_minimal(TaskQueued))
    with pytest.raises(ValidationError):
        p.task_id = "other"  # type: ignore[misc]


def test_unknown_event_type() -> None:
    env = Envelope(
        id="evt_1",
        type="campaign.exploded",
        occurred_at=AT,
        producer="p",
        org_id="o",
        workspace_id="w",
        correlation_id="c",
        data={},
    )
    with pytest.raises(UnknownEventType, match="campaign.exploded"):
        env.payload()
    assert issubclass(UnknownEventType, ValueError)


def test_envelope_ignores_extra_fields() -> None:
    env = _envelope(CallEnded.model_validate(_minimal(CallEnded)))
    raw = json.loads(env.model_dump_json())
    raw["trace"] = {"span": 1}
    assert parse_envelope(json.dumps(raw).encode()) == env


def test_dedupe_parts_give_stable_ids() -> None:
    p = TaskQueued.model_validate(_minimal(TaskQueued))
    a = _envelope(p, dedupe_parts=("tsk_1", 2))
    b = _envelope(p, dedupe_parts=("tsk_1", 2))
    c = _envelope(p, dedupe_parts=("tsk_1", 3))
    other = ev.TaskWithdrawn.model_validate(_minimal(ev.TaskWithdrawn))
    d = _envelope(other, dedupe_parts=("tsk_1", 2))
    assert a.id == b.id
    assert len({a.id, c.id, d.id}) == 3
    assert a.id.startswith("evt_")
    assert _envelope(p).id != _envelope(p).id  # random without dedupe parts
    assert _envelope(p, event_id="evt_fixed", dedupe_parts=("x",)).id == "evt_fixed"


def test_correlation_and_causation() -> None:
    p = TaskQueued.model_validate(_minimal(TaskQueued))
    root = _envelope(p)
    child = _envelope(p, causation=root)
    grandchild = _envelope(p, causation=child)
    assert child.causation_id == root.id
    assert child.correlation_id == root.id
    assert grandchild.correlation_id == root.id and grandchild.causation_id == child.id
    assert _envelope(p, causation=root, correlation_id="corr_x").correlation_id == "corr_x"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json at all", "not_json"),
        (b"\xff\xfe\x00garbage", "not_json"),
        (b"", "not_json"),
        (b"[1, 2, 3]", "not_an_envelope"),
        (b'"a string"', "not_an_envelope"),
        (b"42", "not_an_envelope"),
        (b"null", "not_an_envelope"),
        (b"{}", "invalid_envelope"),
        (b'{"id": "evt_1", "type": "x"}', "invalid_envelope"),
    ],
)
def test_parse_envelope_poison(body: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage) as exc:
        parse_envelope(body)
    assert exc.value.reason == reason
    assert exc.value.error
    assert str(exc.value).startswith(reason + ":")


def test_invalid_envelope_names_the_bad_fields() -> None:
    env = _envelope(TaskQueued.model_validate(_minimal(TaskQueued)))
    raw = json.loads(env.model_dump_json())
    del raw["org_id"]
    raw["occurred_at"] = "yesterday-ish"
    with pytest.raises(PoisonMessage) as exc:
        parse_envelope(json.dumps(raw).encode())
    assert exc.value.reason == "invalid_envelope"
    assert "org_id" in exc.value.error and "occurred_at" in exc.value.error


def test_parse_envelope_accepts_unknown_type() -> None:
    # the envelope is valid; the consumer decides whether it handles the type
    body = json.dumps(
        {
            "id": "evt_1",
            "type": "future.thing",
            "occurred_at": AT.isoformat(),
            "producer": "p",
            "org_id": "o",
            "workspace_id": "w",
            "correlation_id": "c",
            "data": {},
        }
    ).encode()
    env = parse_envelope(body)
    assert env.type == "future.thing"
    with pytest.raises(UnknownEventType):
        env.payload()
