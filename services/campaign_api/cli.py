"""``outbound-admin``: operator commands that need no API key yet.

``outbound-admin create-org --name Acme --workspace Sales`` creates an org, its first workspace
and an org-admin API key, and prints the key once (it is stored only as a hash)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from campaign_api.repository import ApiRepository
from campaign_api.settings import get_settings
from campaign_api.tenancy import create_org
from outbound_core.mongo import mongo_client, service_database


async def _create_org(name: str, workspace: str) -> dict[str, str]:
    settings = get_settings()
    client = mongo_client(settings)
    try:
        repo = ApiRepository(service_database(client, settings))
        await repo.ensure_indexes()
        org_id, ws, key = await create_org(
            repo, name=name, workspace=workspace, now=settings.clock().now()
        )
    finally:
        await client.close()
    return {"org_id": org_id, "workspace_id": ws["_id"], "api_key": key}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outbound-admin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    org = sub.add_parser("create-org", help="create an org, a workspace and an org-admin key")
    org.add_argument("--name", required=True)
    org.add_argument("--workspace", default="Default")
    args = parser.parse_args(argv)
    if args.command == "create-org":
        out = asyncio.run(_create_org(args.name, args.workspace))
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stderr.write("Keep the api_key now: it is stored hashed and cannot be shown again.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
