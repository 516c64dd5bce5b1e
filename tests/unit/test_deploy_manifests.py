"""The Kubernetes manifests render from deploy/values.yaml and validate offline: built-in kinds
against the Kubernetes JSON schemas shipped by kubernetes-validate (strict), custom resources
against deploy/schemas/crds.yaml, plus the operational rules the deployment must keep."""

from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("render", ROOT / "deploy" / "render.py")
assert spec is not None
assert spec.loader is not None
render = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render)

VALUES = yaml.safe_load((ROOT / "deploy" / "values.yaml").read_text())
RENDERED: dict[str, list[dict[str, Any]]] = render.render(VALUES)
CRDS = yaml.safe_load((ROOT / "deploy" / "schemas" / "crds.yaml").read_text())
ALL = [d for docs in RENDERED.values() for d in docs]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in ALL if d["kind"] == kind]


def test_committed_manifests_are_current() -> None:
    for name, docs in RENDERED.items():
        committed = (ROOT / "deploy" / "kubernetes" / name).read_text()
        assert committed == render.dump(docs), f"{name} is stale: run python deploy/render.py"


@pytest.mark.parametrize(
    "doc",
    [d for d in ALL if d["kind"] not in CRDS],
    ids=lambda d: f"{d['kind']}/{d.get('metadata', {}).get('name')}",
)
def test_builtin_kinds_validate_strictly(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, "1.37.0", strict=True)


@pytest.mark.parametrize(
    "doc",
    [d for d in ALL if d["kind"] in CRDS],
    ids=lambda d: f"{d['kind']}/{d.get('metadata', {}).get('name')}",
)
def test_custom_resources_validate(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, CRDS[doc["kind"]])


def test_one_deployment_per_service_with_probes_resources_and_grace() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    assert set(deployments) == set(VALUES["services"])
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments.values()}
    assert images == {VALUES["image"]}, "one image for every service"
    for d in deployments.values():
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["resources"]["requests"] and c["resources"]["limits"]
        assert pod["terminationGracePeriodSeconds"] > VALUES["gracefulTimeoutSeconds"]
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_every_service_has_a_pdb_and_keda_never_exceeds_partitions() -> None:
    assert {p["metadata"]["name"] for p in of_kind("PodDisruptionBudget")} == set(
        VALUES["services"]
    )
    for so in of_kind("ScaledObject"):
        assert so["spec"]["maxReplicaCount"] <= VALUES["kafka"]["topicPartitions"]
    for topic in of_kind("KafkaTopic"):
        assert topic["spec"]["partitions"] == VALUES["kafka"]["topicPartitions"]


def test_webhook_egress_excludes_cluster_and_metadata_addresses() -> None:
    (policy,) = of_kind("NetworkPolicy")
    blocks = [r for e in policy["spec"]["egress"] for t in e["to"] if (r := t.get("ipBlock"))]
    (internet,) = blocks
    excluded = [ipaddress.ip_network(c) for c in internet["except"]]
    for addr in (
        "10.1.2.3",
        "172.20.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "127.0.0.1",
    ):
        assert any(ipaddress.ip_address(addr) in net for net in excluded), addr


def test_alert_rules_cover_the_operational_failures() -> None:
    (rules,) = of_kind("PrometheusRule")
    names = {r["alert"] for g in rules["spec"]["groups"] for r in g["rules"]}
    assert {
        "OutboundStalledCampaign",
        "OutboundDeadLetterGrowth",
        "OutboundWebhookEndpointFailing",
        "OutboundLeaseExpiries",
    } <= names


def test_dashboard_is_current_and_every_panel_queries_prometheus() -> None:
    import json

    committed = json.loads((ROOT / "deploy" / "grafana" / "outbound.json").read_text())
    assert committed == render.dashboard()
    assert all(p["targets"][0]["expr"] for p in committed["panels"])
