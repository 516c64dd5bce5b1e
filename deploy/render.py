"""Render the Kubernetes manifests of Outbound from ``deploy/values.yaml``.

Why a small renderer rather than a Helm chart: the manifests must render and validate offline in
the test suite, on machines where neither helm nor kustomize can be installed; a Python renderer
runs from the project's own environment and its output is plain YAML that kustomize overlays
(``deploy/overlays/``) can patch. ``python deploy/render.py`` rewrites ``deploy/kubernetes/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "kubernetes"
Manifest = dict[str, Any]

TOPICS = [
    "campaigns.v1",
    "tasks.submit.v1",
    "allocator.v1",
    "dispatch.v1",
    "calls.v1",
    "dispositions.v1",
    "leads.v1",
    "deadletter.v1",
]


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "outbound"}


def meta(name: str, ns: str, **extra: Any) -> Manifest:
    return {"name": name, "namespace": ns, "labels": labels(name), **extra}


def config_map(v: Manifest) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("outbound-config", v["namespace"]),
        "data": {
            "KAFKA_BOOTSTRAP_SERVERS": v["kafka"]["bootstrapServers"],
            "KAFKA_IDEMPOTENT_PRODUCER": "true",
            "KAFKA_TOPIC_PARTITIONS": str(v["kafka"]["topicPartitions"]),
            "OUTBOUND_ENVIRONMENT": "production",
            "OUTBOUND_HTTP_HOST": "0.0.0.0",  # noqa: S104 - inside the pod network
            "OUTBOUND_LOG_JSON": "true",
            "OUTBOUND_GRACEFUL_TIMEOUT": str(v["gracefulTimeoutSeconds"]),
            "CAMPAIGN_API_WEBHOOK_SERVICE_URL": f"http://webhook.{v['namespace']}.svc:8085",
        },
    }


def deployment(name: str, s: Manifest, v: Manifest) -> Manifest:
    port = s["port"]
    prefix = s["module"].upper()
    probe = {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, v["namespace"]),
        "spec": {
            "replicas": s["replicas"],
            "selector": {"matchLabels": labels(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels(name),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(port),
                    },
                },
                "spec": {
                    # Above the service's own graceful timeout, so SIGTERM always gets to finish.
                    "terminationGracePeriodSeconds": v["gracefulTimeoutSeconds"] + 15,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": name,
                            "image": v["image"],
                            "command": ["python", "-m", s["module"]],
                            "ports": [{"name": "http", "containerPort": port}],
                            "env": [{"name": f"{prefix}_HTTP_PORT", "value": str(port)}],
                            "envFrom": [
                                {"configMapRef": {"name": "outbound-config"}},
                                {"secretRef": {"name": v["mongodb"]["secretName"]}},
                                {"secretRef": {"name": v["bootstrapSecretName"], "optional": True}},
                            ],
                            "livenessProbe": probe,
                            "readinessProbe": {
                                **probe,
                                "httpGet": {"path": "/readyz", "port": "http"},
                            },
                            "startupProbe": {**probe, "failureThreshold": 30, "periodSeconds": 2},
                            "resources": {
                                "requests": {"cpu": s["cpu"], "memory": s["memory"]},
                                "limits": {"cpu": s["cpuLimit"], "memory": s["memoryLimit"]},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def service(name: str, s: Manifest, v: Manifest) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, v["namespace"]),
        "spec": {
            "selector": labels(name),
            "ports": [{"name": "http", "port": s["port"], "targetPort": "http"}],
        },
    }


def pdb(name: str, v: Manifest) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(name, v["namespace"]),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(name)}},
    }


def scaled_object(name: str, s: Manifest, v: Manifest) -> Manifest:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta(name, v["namespace"]),
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": s["replicas"],
            # Never more consumers than partitions: extra replicas would sit idle.
            "maxReplicaCount": min(s["maxReplicas"], v["kafka"]["topicPartitions"]),
            "triggers": [
                {
                    "type": "kafka",
                    "metadata": {
                        "bootstrapServers": v["kafka"]["bootstrapServers"],
                        "consumerGroup": f"{name}.{s['lagTopic']}",
                        "topic": s["lagTopic"],
                        "lagThreshold": "500",
                    },
                }
            ],
        },
    }


def service_monitor(v: Manifest) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta("outbound", v["namespace"]),
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/part-of": "outbound"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }


def webhook_network_policy(v: Manifest) -> Manifest:
    """The webhook service calls the internet, never cluster-internal addresses (SSRF)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("webhook-egress", v["namespace"]),
        "spec": {
            "podSelector": {"matchLabels": labels("webhook")},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kafka"}
                            }
                        }
                    ]
                },
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "mongodb"}
                            }
                        }
                    ]
                },
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": v["clusterCidrs"]}}],
                    "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 80}],
                },
            ],
        },
    }


def kafka_topic(topic: str, v: Manifest) -> Manifest:
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {
            "name": topic.replace(".", "-"),
            "namespace": v["namespace"],
            "labels": {"strimzi.io/cluster": v["kafka"]["strimziCluster"]},
        },
        "spec": {
            "topicName": topic,
            "partitions": v["kafka"]["topicPartitions"],
            "replicas": v["kafka"]["replicationFactor"],
            "config": {"retention.ms": str(7 * 24 * 3600 * 1000), "min.insync.replicas": "2"},
        },
    }


def prometheus_rules(v: Manifest) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta("outbound-alerts", v["namespace"]),
        "spec": {"groups": [{"name": "outbound", "rules": ALERTS}]},
    }


ALERTS: list[Manifest] = [
    {
        "alert": "OutboundStalledCampaign",
        # Eligible work and free slots in an org, yet no call placed: the allocator or the
        # dialer is stuck (a working allocator never leaves a slot idle while work is allowed).
        "expr": "(sum by (org_id) (allocator_grantable_tasks) > 0)"
        " and on (org_id) "
        "(sum by (org_id) (allocator_slots_total) - sum by (org_id) (allocator_slots_active) > 0)"
        " unless on () (sum(rate(calls_placed_total[10m])) > 0)",
        "for": "10m",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": "Org {{ $labels.org_id }}: eligible work and free slots, but no calls",
            "description": "Queued tasks their caps allow and idle slots for 10 minutes while "
            "the dialer placed no call: check the slot-allocator (ownership, pacing), dialer "
            "readiness and the provider.",
        },
    },
    {
        "alert": "OutboundDeadLetterGrowth",
        "expr": "sum(increase(outbound_deadletters_total[15m])) > 0",
        "for": "0m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Messages are being dead-lettered",
            "description": "Read deadletter.v1: each record names the topic, the "
            "consumer and the reason.",
        },
    },
    {
        "alert": "OutboundWebhookEndpointFailing",
        "expr": 'sum(rate(webhook_deliveries_total{result=~"retry|dead"}[15m])) > 0',
        "for": "30m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Webhook deliveries keep failing",
            "description": "A subscriber endpoint fails; see GET /v1/webhooks/{id}/deliveries.",
        },
    },
    {
        "alert": "OutboundLeaseExpiries",
        "expr": 'sum(increase(outbound_events_published_total{type="lease.expired"}[15m])) > 0',
        "for": "0m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Slot leases expire",
            "description": "Calls did not report their end: a dialer died or the "
            "provider never called back. The slots were returned.",
        },
    },
]


PANELS: list[tuple[str, str]] = [
    ("Calls placed per second", "sum(rate(calls_placed_total[1m]))"),
    ("Calls ended by status", "sum by (status) (rate(calls_ended_total[5m]))"),
    ("Calls aborted by reason", "sum by (reason) (rate(calls_aborted_total[5m]))"),
    (
        "Tasks queued per second",
        'sum(rate(outbound_events_published_total{type="task.queued"}[1m]))',
    ),
    ("Lease expiries", 'sum(increase(outbound_events_published_total{type="lease.expired"}[5m]))'),
    (
        "Handler time p99 by event",
        "histogram_quantile(0.99, sum by (le, type) (rate(outbound_handler_seconds_bucket[5m])))",
    ),
    (
        "Dead letters by topic and reason",
        "sum by (topic, reason) (increase(outbound_deadletters_total[15m]))",
    ),
    ("Webhook deliveries by result", "sum by (result) (rate(webhook_deliveries_total[5m]))"),
    (
        "Webhook delivery latency p99",
        "histogram_quantile(0.99, sum by (le) (rate(webhook_delivery_seconds_bucket[5m])))",
    ),
    (
        "Events consumed by service",
        "sum by (service, result) (rate(outbound_events_consumed_total[5m]))",
    ),
]


def dashboard() -> Manifest:
    panels = []
    for i, (title, expr) in enumerate(PANELS):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
                "targets": [{"refId": "A", "expr": expr}],
            }
        )
    return {
        "title": "Outbound",
        "uid": "outbound-overview",
        "schemaVersion": 39,
        "tags": ["outbound"],
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]
        },
        "panels": panels,
    }


def render(values: Manifest) -> dict[str, list[Manifest]]:
    files: dict[str, list[Manifest]] = {
        "config.yaml": [config_map(values)],
        "monitoring.yaml": [service_monitor(values), prometheus_rules(values)],
        "network-policy.yaml": [webhook_network_policy(values)],
        "kafka-topics.yaml": [kafka_topic(t, values) for t in TOPICS],
    }
    for name, s in values["services"].items():
        files[f"{name}.yaml"] = [
            deployment(name, s, values),
            service(name, s, values),
            pdb(name, values),
            scaled_object(name, s, values),
        ]
    files["kustomization.yaml"] = [
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": sorted(f for f in files if f != "kustomization.yaml"),
        }
    ]
    return files


def dump(docs: list[Manifest]) -> str:
    header = "# Generated by deploy/render.py from deploy/values.yaml; do not edit.\n"
    return header + "---\n".join(yaml.safe_dump(d, sort_keys=False, width=100) for d in docs)


def main() -> None:
    values = yaml.safe_load((HERE / "values.yaml").read_text())
    OUT.mkdir(exist_ok=True)
    for name, docs in render(values).items():
        (OUT / name).write_text(dump(docs))
    (HERE / "grafana").mkdir(exist_ok=True)
    (HERE / "grafana" / "outbound.json").write_text(json.dumps(dashboard(), indent=2) + "\n")
    sys.stdout.write(f"rendered {OUT}\n")


if __name__ == "__main__":
    main()
