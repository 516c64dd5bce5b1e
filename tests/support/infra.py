"""Where the tests' broker and database come from, in this order: the servers named by
KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL; Apache Kafka and MongoDB in containers (testcontainers)
when a Docker engine answers; otherwise the embedded servers from PyPI. OUTBOUND_TEST_INFRA
(`auto`, `embedded`, `containers`) forces a choice. The same tests run on all three."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from outbound_core.embedded import embedded_kafka, embedded_mongo, free_port, start_and_wait

MODES = ("auto", "embedded", "containers")
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
MONGO_IMAGE = "mongo:8.0"


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # no client, no socket, no engine: all mean "not here"
        return False
    return True


def choose(mode: str | None, *, docker: bool) -> str:
    """``embedded`` or ``containers`` for the OUTBOUND_TEST_INFRA value ``mode``."""
    mode = mode or "auto"
    if mode not in MODES:
        raise ValueError(f"OUTBOUND_TEST_INFRA={mode!r}: expected one of {', '.join(MODES)}")
    if mode == "auto":
        return "containers" if docker else "embedded"
    return mode


@contextlib.contextmanager
def broker_and_database(data_dir: Path) -> Iterator[tuple[str, str]]:
    """(kafka bootstrap servers, MongoDB URL), started here unless given in the environment."""
    kafka_url = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    mongo_url = os.environ.get("MONGODB_URL")
    if kafka_url and mongo_url:
        yield kafka_url, mongo_url
        return
    requested = os.environ.get("OUTBOUND_TEST_INFRA")
    mode = choose(requested, docker=requested != "embedded" and docker_available())
    with contextlib.ExitStack() as stack:
        if mode == "containers":
            from testcontainers.community.kafka import KafkaContainer
            from testcontainers.community.mongodb import MongoDbContainer

            if not kafka_url:
                kafka = stack.enter_context(KafkaContainer(KAFKA_IMAGE).with_kraft())
                kafka_url = kafka.get_bootstrap_server()
            if not mongo_url:
                mongo_url = stack.enter_context(MongoDbContainer(MONGO_IMAGE)).get_connection_url()
        else:
            if not kafka_url:
                port = free_port()
                proc = embedded_kafka(port, data_dir)
                stack.callback(proc.stop)
                start_and_wait(proc, port)
                kafka_url = f"127.0.0.1:{port}"
            if not mongo_url:
                port = free_port()
                proc = embedded_mongo(port, data_dir)
                stack.callback(proc.stop)
                start_and_wait(proc, port)
                mongo_url = f"mongodb://127.0.0.1:{port}"
        yield kafka_url, mongo_url
