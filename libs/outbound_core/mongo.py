"""MongoDB access through PyMongo's async API.

``pymongo.AsyncMongoClient`` is the maintained successor of motor (motor is deprecated and
receives only critical fixes until May 2027), so Outbound uses it directly."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from outbound_core.settings import ServiceSettings

Document = dict[str, Any]


def mongo_client(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        appname=settings.service_name,
        # An acknowledged write must survive a crash of the database: events are published
        # after it, and a write lost behind a published event breaks what consumers know.
        journal=True,
    )


def service_database(
    client: AsyncMongoClient[Document], settings: ServiceSettings
) -> AsyncDatabase[Document]:
    """The service's own database; no service opens another's."""
    return client[settings.database]
