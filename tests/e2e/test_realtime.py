"""Realtime campaigns end to end: the reference's sample task, submitted over HTTP and over
Kafka (with kafka-python, as another service would), is dialled under its own calling hours,
priorities, intervals and retry outcomes; the same task twice (either way) is one task; every
invalid task lands in the dead-letter topic with its reason while the valid ones around it are
dialled."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer

from outbound_core.devstack import DevStack
from outbound_core.topics import ALLOCATOR, DEADLETTER, TASKS_STATUS, TASKS_SUBMIT
from tests.conftest import wait_until
from tests.e2e.planner_support import mongo, sim_calls, vclock
from tests.support.subscriber import Subscriber

pytestmark = pytest.mark.e2e

IST = ZoneInfo("Asia/Kolkata")
FROM = "+918012345678"

# The reference's sample body, comments and trailing comma included (placeholders filled in).
SAMPLE = """{
  "phone": "%(phone)s", // the number to call
  "from": "%(from)s", // the agent's caller id
  "agent": "%(agent)s",
  "start": 1000, // 10:00
  "end": 1800, // 18:00
  "timezone": "Asia/Kolkata",
  "startAfter": %(start_after)d, // first attempt not before
  "endAfter": %(end_after)d, // nothing after
  "priorities": [
    100,
    50,
  ],
  "retries": 2, // attempts in all
  "intervals": [
    180000
  ],
  "retryOutcomes": [
    "voicemail"
  ],
  "context": {
    "name": "Tarun"
  },
  "campaign": "%(campaign)s",
  "task_ref": "%(ref)s",
  "sim_outcomes": "%(script)s"
}"""


def _client(stack: DevStack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.api_url, timeout=30.0, headers={"Authorization": f"Bearer {key}"}
    )


def _workspace(api: httpx.Client, name: str) -> tuple[str, str]:
    ws = api.post("/v1/workspaces", json={"name": name})
    assert ws.status_code == 201, ws.text
    key = api.post(f"/v1/workspaces/{ws.json()['id']}/keys", json={"name": "rt"})
    assert key.status_code == 201, key.text
    return str(ws.json()["id"]), str(key.json()["key"])


def _realtime_campaign(client: httpx.Client, **extra: Any) -> tuple[str, str]:
    agent = client.post(
        "/v1/agents", json={"name": "Lead callback", "language": "en-IN", "greeting": "Hi ${name}"}
    )
    assert agent.status_code == 201, agent.text
    r = client.post(
        "/v1/campaigns/realtime",
        json={"name": "web leads", "agent": agent.json()["id"], **extra},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["type"] == "realtime" and body["status"] == "running"
    assert body["sample_task"]["campaign"] == body["id"]
    return str(body["id"]), str(agent.json()["id"])


def _next_opening(now: datetime) -> datetime:
    """The next 10:00 in Kolkata: the first call then has the whole window ahead of it (at
    3600x a window ends within seconds of real time; no race with a loaded machine)."""
    local = now.astimezone(IST)
    opening = local.replace(hour=10, minute=0, second=0, microsecond=0)
    if opening <= local:
        opening += timedelta(days=1)
    return opening


def _sample(stack: DevStack, **fields: Any) -> str:
    start = _next_opening(vclock(stack).now())
    values = {
        "start_after": int(start.timestamp() * 1000),
        "end_after": int((start + timedelta(days=3)).timestamp() * 1000),
        "from": FROM,
        # every attempt reaches voicemail, whatever the attempt numbering
        "script": "voicemail",
        **fields,
    }
    return SAMPLE % values


def _calls(stack: DevStack, task_id: str, n: int) -> list[dict[str, Any]]:
    return list(
        wait_until(
            lambda: (c := sim_calls(stack, [task_id])) and len(c) >= n and c,
            timeout=120,
            message=f"{n} call(s) of {task_id}",
        )
    )


def _check_dialled_as_configured(stack: DevStack, task_id: str, submitted: datetime) -> None:
    """Two attempts (voicemail is a retry outcome of this task, and it has two), both inside
    10:00-18:00 Kolkata time and not before startAfter, from its own caller id, the second
    its own interval after the first ended."""
    calls = _calls(stack, task_id, 2)
    assert [c["outcome"] for c in calls] == ["voicemail", "voicemail"]
    opening = _next_opening(submitted)
    for c in calls:
        local = c["placed_at"].astimezone(IST)
        assert 10 <= local.hour < 18, f"called at {local} outside 10:00-18:00 IST"
        assert c["placed_at"] >= opening
        assert c["from"] == FROM
    # the retry waits its own interval (3 minutes) after the first call ended
    ended = calls[0]["ends_at"].replace(tzinfo=calls[1]["placed_at"].tzinfo)
    assert calls[1]["placed_at"] >= ended + timedelta(minutes=3) - timedelta(seconds=1)


def _attempt_priorities(stack: DevStack, task_id: str) -> list[int]:
    consumer = KafkaConsumer(
        ALLOCATOR.name,
        bootstrap_servers=stack.kafka_url,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=2000,
        api_version=(2, 5),
    )
    seen: dict[int, int] = {}
    for msg in consumer:
        try:
            env = json.loads(msg.value)
        except ValueError:
            continue
        data = env.get("data", {}) if isinstance(env, dict) else {}
        if env.get("type") == "task.queued" and data.get("task_id") == task_id:
            seen[data["dial"]["pass_number"]] = data["attempt_priority"]
    consumer.close()
    return [seen[k] for k in sorted(seen)]


def test_sample_task_over_http_is_dialled_under_its_own_configuration(
    stack: DevStack, api: httpx.Client
) -> None:
    _, key = _workspace(api, "Realtime HTTP")
    with _client(stack, key) as client:
        assert client.post("/v1/numbers", json={"number": FROM}).status_code == 201
        campaign, agent = _realtime_campaign(client, max_slots=2)
        ref = f"lead-{uuid.uuid4().hex[:8]}"
        submitted = vclock(stack).now()  # before the body: its startAfter is not earlier
        body = _sample(stack, phone="+919876500801", agent=agent, campaign=campaign, ref=ref)
        r = client.post("/v1/tasks", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        task = r.json()
        assert task["task_ref"] == ref
        assert task["config"]["intervals"] == [180000]
        assert task["config"]["priorities"] == [100, 50]
        assert task["config"]["agent"] == agent
        # the same task again: the same task, not a second one
        again = client.post("/v1/tasks", content=body, headers={"Content-Type": "application/json"})
        assert again.status_code == 200, again.text
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == task["id"]

        # the same, but voicemail is not one of its retry outcomes: one call only
        once = json.loads(_strip(body))
        once.update(task_ref=f"{ref}-once", phone="+919876500802", retryOutcomes=[])
        r1 = client.post("/v1/tasks", json=once)
        assert r1.status_code == 201, r1.text

        _check_dialled_as_configured(stack, task["id"], submitted)
        assert _attempt_priorities(stack, task["id"]) == [-100, -50]
        done = _finished(client, task["id"])
        assert done["state"] == "not_reachable"
        assert done["last_disposition"] == "not_reachable"
        assert len(done["calls"]) == 2
        single = _finished(client, r1.json()["id"])
        assert single["last_disposition"] == "voicemail"
        assert len(sim_calls(stack, [r1.json()["id"]])) == 1
        listed = client.get(f"/v1/campaigns/{campaign}/tasks", params={"status": "completed"})
        assert sorted(t["id"] for t in listed.json()["data"]) == sorted(
            [task["id"], r1.json()["id"]]
        )
        # a realtime campaign keeps running after its tasks are done: leads keep coming
        assert client.get(f"/v1/campaigns/{campaign}").json()["status"] == "running"


def test_http_errors_are_problems(stack: DevStack, api: httpx.Client) -> None:
    _, key = _workspace(api, "Realtime errors")
    with _client(stack, key) as client:
        campaign, _agent = _realtime_campaign(client)
        bad = client.post(
            "/v1/tasks",
            json={"phone": "+919876500809", "campaign": campaign, "retries": 3, "intervals": [1]},
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert bad.json()["errors"][0]["reason"] == "invalid_intervals"
        assert client.post("/v1/tasks", json={"campaign": campaign}).json()["errors"][0][
            "reason"
        ] == ("missing_phone")
        unknown = client.post("/v1/tasks", json={"phone": "+919876500809", "campaign": "cmp_x"})
        assert unknown.status_code == 404
        batch = client.post(
            "/v1/tasks",
            json={
                "tasks": [
                    {"phone": "+919876500810", "campaign": campaign, "task_ref": "a"},
                    {"phone": "not a phone", "campaign": campaign},
                    {"phone": "+919876500810", "campaign": campaign, "task_ref": "a"},
                ]
            },
        )
        assert batch.status_code == 200, batch.text
        assert [x["status"] for x in batch.json()["results"]] == [
            "accepted",
            "rejected",
            "duplicate",
        ]
        assert batch.json()["results"][1]["reason"] == "invalid_phone"


def test_task_pause_resume_and_archive(stack: DevStack, api: httpx.Client) -> None:
    _, key = _workspace(api, "Realtime control")
    with _client(stack, key) as client:
        campaign, _ = _realtime_campaign(client)
        far = int((vclock(stack).now() + timedelta(days=2)).timestamp() * 1000)
        r = client.post(
            "/v1/tasks",
            json={"phone": "+919876500820", "campaign": campaign, "startAfter": far},
        )
        assert r.status_code == 201, r.text
        tid = r.json()["id"]
        assert client.patch(f"/v1/tasks/{tid}", json={"action": "pause"}).status_code == 200
        wait_until(
            lambda: client.get(f"/v1/tasks/{tid}").json()["status"] == "paused",
            message="task paused",
        )
        assert client.patch(f"/v1/tasks/{tid}", json={"action": "resume"}).status_code == 200
        wait_until(
            lambda: client.get(f"/v1/tasks/{tid}").json()["status"] == "queued",
            message="task resumed",
        )
        assert client.patch(f"/v1/tasks/{tid}", json={"action": "archive"}).status_code == 200
        wait_until(
            lambda: client.get(f"/v1/tasks/{tid}").json()["status"] == "archived",
            message="task archived",
        )
        assert sim_calls(stack, [tid]) == []

        # the campaign's pause, resume and archive apply to its tasks
        r2 = client.post(
            "/v1/tasks", json={"phone": "+919876500821", "campaign": campaign, "startAfter": far}
        )
        tid2 = r2.json()["id"]
        assert (
            client.patch(f"/v1/campaigns/{campaign}", json={"action": "pause"}).status_code == 200
        )
        assert client.get(f"/v1/tasks/{tid2}").json()["status"] == "paused"
        assert (
            client.patch(f"/v1/campaigns/{campaign}", json={"action": "resume"}).status_code == 200
        )
        assert client.get(f"/v1/tasks/{tid2}").json()["status"] == "queued"
        archived = client.patch(f"/v1/campaigns/{campaign}", json={"action": "archive"})
        assert archived.status_code == 200, archived.text
        wait_until(
            lambda: client.get(f"/v1/tasks/{tid2}").json()["status"] == "archived",
            message="campaign archive archives its tasks",
        )
        late = client.post("/v1/tasks", json={"phone": "+919876500822", "campaign": campaign})
        assert late.status_code == 409
        assert late.json()["errors"][0]["reason"] == "campaign_archived"


def _org_of(stack: DevStack, workspace_id: str) -> str:
    with mongo(stack) as client:
        doc = client["outbound_campaign_api"]["workspaces"].find_one({"_id": workspace_id})
    assert doc is not None
    return str(doc["org_id"])


def test_kafka_ingress_dedupes_rejects_to_the_deadletter_topic_and_goes_on(
    stack: DevStack, api: httpx.Client
) -> None:
    assert stack.kafka_url
    ws, key = _workspace(api, "Realtime Kafka")
    other_ws, other_key = _workspace(api, "Realtime other")
    marker = uuid.uuid4().hex[:10]
    with _client(stack, key) as client, _client(stack, other_key) as other:
        assert client.post("/v1/numbers", json={"number": FROM}).status_code == 201
        campaign, agent = _realtime_campaign(client)
        foreign, _ = _realtime_campaign(other)
        token = client.post("/v1/producer-tokens", json={"name": "leads"}).json()["token"]
        sub = Subscriber().start()
        hook = client.post(
            "/v1/webhooks", json={"url": sub.url, "events": ["campaign.lead.updated"]}
        )
        assert hook.status_code == 201, hook.text
        sub.secret = hook.json()["secret"]
        opted_out = "+919876500839"
        # Opted out through the API: the disposition service's list, then the API's projection.
        added = client.post("/v1/suppressions", json={"phones": [opted_out]})
        assert added.status_code in (200, 201), added.text

        def projected() -> bool:
            with mongo(stack) as m:
                doc = m["outbound_campaign_api"]["suppressed"].find_one(
                    {"_id": f"{_org_of(stack, ws)}:{opted_out}"}
                )
            return bool(doc and doc.get("active"))

        wait_until(projected, timeout=60, message="the opt-out reaches campaign-api")

        def task(ref: str, **fields: Any) -> dict[str, Any]:
            return {
                "workspace_id": ws,
                "api_key": token,
                "phone": "+919876500831",
                "campaign": campaign,
                "start": 0,
                "end": 0,
                "task_ref": f"{marker}-{ref}",
                "sim_outcomes": "interested",
                **fields,
            }

        sample_ref = f"{marker}-sample"
        submitted = vclock(stack).now()
        sample = json.loads(
            json.dumps(
                {
                    **json.loads(
                        _strip(
                            _sample(
                                stack,
                                phone="+919876500830",
                                agent=agent,
                                campaign=campaign,
                                ref=sample_ref,
                            )
                        )
                    ),
                    "workspace_id": ws,
                    "api_key": key,
                }
            )
        )
        envelope = {
            "id": f"evt_{marker}",
            "type": "task.submit",
            "version": 1,
            "occurred_at": "2026-03-02T15:00:00Z",
            "producer": "lead-forms",
            "org_id": "ignored",
            "workspace_id": ws,
            "correlation_id": marker,
            "data": {**task("env", phone="+919876500832"), "api_key": token},
        }
        invalid = {
            "not_json": b"{ this is not json " + marker.encode(),
            "missing_phone": task("nophone", phone=None),
            "invalid_phone": task("badphone", phone="+1 555"),
            "invalid_intervals": task("intervals", retries=3, intervals=[60000]),
            "unknown_campaign": task("unknown", campaign=f"cmp_{marker}"),
            "campaign_other_workspace": task("foreign", campaign=foreign),
            "opted_out": task("optout", phone=opted_out),
            "workspace_mismatch": task("mismatch", workspace_id=other_ws),
            "invalid_credential": task("badkey", api_key="ob_nope"),
        }
        producer = KafkaProducer(bootstrap_servers=stack.kafka_url, api_version=(2, 5))

        def send(ref: str, value: dict[str, Any] | bytes) -> None:
            body = value if isinstance(value, bytes) else json.dumps(value).encode()
            producer.send(TASKS_SUBMIT.name, key=f"{marker}-{ref}".encode(), value=body)

        send("sample", sample)
        for reason, value in invalid.items():
            send(reason, value)
            send(f"ok-{reason}", task(f"ok-{reason}", phone=f"+9198765008{40 + len(reason) % 50}"))
        send("envelope", envelope)
        send("sample", sample)  # the same task twice on Kafka
        producer.flush()
        producer.close()

        # the Kafka sample, submitted again over HTTP: the same task
        http_again = client.post("/v1/tasks", json={**sample, "api_key": None})
        sample_id = wait_until(
            lambda: (
                (r := client.post("/v1/tasks", json=dict(sample.items()))).status_code == 200
                and r.json()["id"]
            ),
            message="Kafka sample accepted",
        )
        assert http_again.status_code in (200, 201)
        assert http_again.json()["id"] == sample_id
        _check_dialled_as_configured(stack, sample_id, submitted)
        # the producer's results also reach webhook subscribers, signed
        final = wait_until(
            lambda: [
                r
                for r in sub.of_type("campaign.lead.updated")
                if r.payload["data"]["lead_id"] == sample_id
                and r.payload["data"]["status"] == "not_reachable"
            ],
            message="webhook for the sample's final state",
        )
        assert final[0].verified
        sub.stop()

        dead = _collect(stack, DEADLETTER.name, lambda d: marker in json.dumps(d), len(invalid))
        reasons = {d["data"]["reason"] for d in dead}
        assert reasons >= set(invalid), reasons
        assert all(token not in d["data"]["raw"] for d in dead)
        statuses = _collect(
            stack,
            TASKS_STATUS.name,
            lambda d: (
                str(d["data"].get("task_ref") or "").startswith(marker)
                and d["data"]["status"] == "rejected"
            ),
            len(invalid) - 1,
        )
        assert {s["data"]["reason"] for s in statuses} >= set(invalid) - {"not_json"}

        listed = client.get(f"/v1/campaigns/{campaign}/tasks", params={"limit": 1000}).json()
        refs = [t["task_ref"] for t in listed["data"]]
        assert refs.count(sample_ref) == 1
        # every valid task around the bad ones is dialled
        valid_ids = [
            t["id"]
            for t in listed["data"]
            if t["task_ref"].startswith(f"{marker}-ok-") or t["task_ref"] == f"{marker}-env"
        ]
        assert len(valid_ids) == len(invalid) + 1
        wait_until(
            lambda: {c["task_id"] for c in sim_calls(stack, valid_ids)} == set(valid_ids),
            timeout=120,
            message="valid tasks dialled",
        )


def _finished(client: httpx.Client, task_id: str) -> dict[str, Any]:
    return dict(
        wait_until(
            lambda: (t := client.get(f"/v1/tasks/{task_id}").json())["status"] == "completed" and t,
            timeout=120,
            message=f"task {task_id} completed",
        )
    )


def _strip(text: str) -> str:
    from campaign_api.realtime import parse_lenient

    return json.dumps(parse_lenient(text))


def _collect(
    stack: DevStack, topic: str, match: Any, at_least: int, timeout: float = 90
) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_url,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=1000,
        api_version=(2, 5),
    )
    seen: list[dict[str, Any]] = []

    def enough() -> bool:
        for msg in consumer:
            try:
                env = json.loads(msg.value)
            except ValueError:
                continue
            if isinstance(env, dict) and isinstance(env.get("data"), dict) and match(env):
                seen.append(env)
        return len(seen) >= at_least

    try:
        wait_until(enough, timeout=timeout, message=f"{at_least} messages on {topic}")
    finally:
        consumer.close()
    return seen
