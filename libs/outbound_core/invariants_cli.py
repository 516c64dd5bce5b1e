"""Read a :class:`~outbound_core.invariants.Snapshot` from every service's database and check it.

    python -m outbound_core.invariants_cli check [--mongo-url URL] [--org ORG_ID ...]
        [--window-slack-seconds S] [--settled] [--json]

Exit status 0 when every promise holds, 1 when there is a breach (each printed with its
evidence), 2 when the database cannot be read. The checker only reads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pymongo import MongoClient

from outbound_core.invariants import Breach, Options, Snapshot, check, summarize

# The databases the services use by default (each service's settings may rename its own).
DATABASES = {
    "simulator": "outbound_simulator",
    "dialer": "outbound_dialer",
    "planner": "outbound_task_planner",
    "allocator": "outbound_slot_allocator",
    "disposition": "outbound_disposition",
    "api": "outbound_campaign_api",
    "webhook": "outbound_webhook",
}


def load_snapshot(
    client: MongoClient[dict[str, Any]],
    *,
    org_ids: Sequence[str] = (),
    default_org_slots: int = 20,
) -> Snapshot:
    """Everything the checker needs, for the given orgs (all of them when none is given)."""

    def read(db: str, coll: str, flt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(client[DATABASES[db]][coll].find(flt or {}))

    org = {"org_id": {"$in": list(org_ids)}} if org_ids else {}
    tasks = read("planner", "tasks", org)
    task_ids = [t["_id"] for t in tasks]
    by_task = {"task_id": {"$in": task_ids}} if org_ids else {}
    campaigns = read("planner", "campaigns", org)
    campaign_ids = [c["_id"] for c in campaigns]
    by_campaign = {"campaign_id": {"$in": campaign_ids}} if org_ids else {}
    return Snapshot(
        sim_calls=read("simulator", "sim_calls", by_task),
        dialer_calls=read("dialer", "calls", org),
        tasks=tasks,
        campaigns=campaigns,
        slot_configs=read("allocator", "slot_config", {"_id": {"$in": list(org_ids)}})
        if org_ids
        else read("allocator", "slot_config"),
        suppressions=read("disposition", "suppressions", org),
        dispositions=read("disposition", "dispositions", org),
        api_campaigns=read("api", "campaigns", {"_id": {"$in": campaign_ids}})
        if org_ids
        else read("api", "campaigns"),
        api_leads=read("api", "leads", by_campaign),
        api_calls=read("api", "calls", by_campaign),
        deliveries=read("webhook", "deliveries", org),
        default_org_slots=default_org_slots,
    )


def report(breaches: Sequence[Breach], *, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            {
                "breaches": len(breaches),
                "by_kind": summarize(breaches),
                "details": [
                    {"kind": b.kind, "subject": b.subject, "detail": b.detail, **b.evidence}
                    for b in breaches
                ],
            },
            default=str,
            indent=2,
        )
    if not breaches:
        return "0 breaches: every promise holds"
    lines = [f"{len(breaches)} breaches: {summarize(breaches)}"]
    lines += [f"  {b}  {json.dumps(dict(b.evidence), default=str)}" for b in breaches]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outbound-check", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="check every promise against the stored state")
    c.add_argument(
        "--mongo-url", default=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:37017")
    )
    c.add_argument("--org", action="append", default=[], help="only this org (repeatable)")
    c.add_argument("--default-org-slots", type=int, default=20)
    c.add_argument("--window-slack-seconds", type=float, default=0.0)
    c.add_argument("--settled", action="store_true", help="the run is over: nothing in flight")
    c.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        with MongoClient[dict[str, Any]](args.mongo_url, serverSelectionTimeoutMS=10_000) as cl:
            snap = load_snapshot(cl, org_ids=args.org, default_org_slots=args.default_org_slots)
    except Exception as exc:
        sys.stderr.write(f"cannot read the databases at {args.mongo_url}: {exc}\n")
        return 2
    breaches = check(
        snap,
        Options(window_slack=timedelta(seconds=args.window_slack_seconds), settled=args.settled),
    )
    sys.stdout.write(report(breaches, as_json=args.json) + "\n")
    return 1 if breaches else 0


if __name__ == "__main__":
    raise SystemExit(main())
