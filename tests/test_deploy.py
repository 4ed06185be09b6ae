"""Issue 18, Kubernetes: the Helm chart in deploy/helm/shelfcount renders offline (Helm's own
library, from the helm-python-sdk wheel), lints, and every manifest it renders validates
against the Kubernetes API schemas (kubernetes-validate); what the manifests promise is
checked against the gateway itself: the settings it reads, the probes it answers, the metrics
the autoscaler and the Grafana dashboard ask for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from gateway.config import REPO_ROOT, Settings
from gateway.server.metrics import GatewayMetrics
from gateway.store import Store

from .server_support import running_gateway

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (make venv)")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

CHART = REPO_ROOT / "deploy" / "helm" / "shelfcount"
DASHBOARD = CHART / "dashboards" / "shelfcount.json"
KUBERNETES = "1.31"
CRDS = {"ServiceMonitor"}  # not in Kubernetes' own schemas
# SHELFCOUNT_* variables the plug-ins read (Settings.extra), not Settings fields
PLUGIN_SETTINGS = {"s3_endpoint", "s3_region", "sheets_credentials"}
EVERYTHING = {
    "autoscaling": {"enabled": False}, "gateway": {"replicas": 3, "tritonUrls": "t1:8001,t2:8001",
                                                   "settings": {"WORKERS": "2"}},
    "photoStore": {"url": "s3://photos/shelfcount", "endpoint": "https://s3.example.com",
                   "region": "eu-west-1"},
    "persistence": {"data": {"enabled": False}, "models": {"existingClaim": "models-rwx"}},
    "secrets": {"sheetsCredentialsSecret": "sheets-key"},
    "triton": {"replicas": 2, "gpus": 0, "pollModelsSeconds": 30},
    "ingress": {"tls": {"enabled": False}, "className": ""},
    "metrics": {"serviceMonitor": {"enabled": True}, "grafanaDashboard": False,
                "podAnnotations": False},
}


def render(values: dict[str, Any] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """The chart's manifests by (kind, name)."""
    chart = helm.Chart.load(CHART)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for name, text in chart.render(values=values or {}, name="prod", namespace="stock").items():
        if not name.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["defaults", "everything"])
def test_the_chart_lints_and_renders_valid_manifests(values: dict[str, Any]) -> None:
    lint = helm.lint(CHART, values, strict=True)
    assert lint["errors"] == [], lint
    manifests = render(values)
    assert manifests
    for (kind, _name), doc in manifests.items():
        if kind not in CRDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises when invalid
    kinds = {kind for kind, _ in manifests}
    if values:
        assert "HorizontalPodAutoscaler" not in kinds and "ServiceMonitor" in kinds
        assert not any(kind == "PersistentVolumeClaim" for kind, _ in manifests)
    else:
        assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                "Ingress", "ConfigMap", "PersistentVolumeClaim"} <= kinds


def test_a_release_without_the_secret_is_refused() -> None:
    with pytest.raises(helm.HelmError, match="secrets.existingSecret"):
        render({"secrets": {"existingSecret": ""}})


def _pods(manifests: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    return manifests[("Deployment", f"prod-shelfcount-{name}")]["spec"]["template"]


def test_the_gateway_deployment_is_what_the_gateway_needs() -> None:
    manifests = render()
    pod = _pods(manifests, "gateway")
    (gateway,) = pod["spec"]["containers"]
    probes = {kind: gateway[f"{kind}Probe"]["httpGet"]["path"]
              for kind in ("readiness", "liveness", "startup")}
    assert probes == {"readiness": "/healthz?probe=ready", "liveness": "/healthz?probe=live",
                      "startup": "/healthz?probe=live"}
    sources = {k: v["name"] for s in gateway["envFrom"] for k, v in s.items()}
    assert sources == {"configMapRef": "prod-shelfcount-settings", "secretRef": "shelfcount"}
    settings = manifests[("ConfigMap", "prod-shelfcount-settings")]["data"]
    assert settings["SHELFCOUNT_TRITON_URL"] == "prod-shelfcount-triton:8001"
    fields = set(Settings.model_fields) | PLUGIN_SETTINGS
    for key, value in render(EVERYTHING)[("ConfigMap", "prod-shelfcount-settings")]["data"].items():
        assert key.startswith("SHELFCOUNT_") and key[len("SHELFCOUNT_"):].lower() in fields, key
        assert not re.search(r"PASSWORD|SECRET|ACCESS_KEY|DATABASE_URL", key), key  # in Secrets
        assert isinstance(value, str)
    mounts = {m["mountPath"] for m in gateway["volumeMounts"]}
    assert {settings["SHELFCOUNT_DATA_DIR"], settings["SHELFCOUNT_MODEL_REPOSITORY"]} <= mounts
    (init,) = pod["spec"]["initContainers"]
    assert "/app/triton_models/. /models/" in " ".join(init["command"])
    dockerfile = (REPO_ROOT / "gateway" / "Dockerfile").read_text()
    assert "WORKDIR /app" in dockerfile and "python -m gateway.inference.repository" in dockerfile
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"http": int(settings["SHELFCOUNT_PORT"]),
                     "grpc": int(settings["SHELFCOUNT_GRPC_PORT"])}


def test_triton_gets_a_gpu_its_models_and_probes() -> None:
    manifests = render()
    pod = _pods(manifests, "triton")
    (triton,) = pod["spec"]["containers"]
    assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert triton["args"] == compose["services"]["triton"]["command"]  # one way to run it
    mounts = {m["name"]: m["mountPath"] for m in triton["volumeMounts"]}
    assert mounts == {"models": "/models", "shm": "/dev/shm"}
    claim = {v["name"]: v for v in pod["spec"]["volumes"]}["models"]["persistentVolumeClaim"]
    gateway_volumes = {v["name"]: v for v in _pods(manifests, "gateway")["spec"]["volumes"]}
    assert gateway_volumes["models"]["persistentVolumeClaim"] == claim  # promotions reach it
    polled = _pods(render(EVERYTHING), "triton")["spec"]["containers"][0]
    assert "--model-control-mode=poll" in polled["args"] and "nvidia.com/gpu" not in str(polled)


def test_services_budgets_autoscaler_and_ingress_reach_the_right_pods() -> None:
    manifests = render()
    for name in ("gateway", "triton"):
        labels = _pods(manifests, name)["metadata"]["labels"]
        selector = manifests[("Service", f"prod-shelfcount-{name}")]["spec"]["selector"]
        budget = manifests[("PodDisruptionBudget", f"prod-shelfcount-{name}")]["spec"]
        assert selector.items() <= labels.items()
        assert budget["selector"]["matchLabels"].items() <= labels.items()
    hpa = manifests[("HorizontalPodAutoscaler", "prod-shelfcount-gateway")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "prod-shelfcount-gateway" and hpa["minReplicas"] >= 2
    (queue,) = [m["external"] for m in hpa["metrics"] if m["type"] == "External"]
    assert queue["metric"]["name"] in _gateway_samples()
    assert "replicas" not in manifests[("Deployment", "prod-shelfcount-gateway")]["spec"]
    ingress = manifests[("Ingress", "prod-shelfcount")]["spec"]
    assert ingress["tls"][0]["secretName"] == "shelfcount-tls"
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = manifests[("Service", backend["name"])]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def _sample_names(text: str) -> set[str]:
    """The metric names of a Prometheus text exposition's samples."""
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def _gateway_samples() -> set[str]:
    """Sample names of a real gateway's /metrics: its registry over a real store holding a
    counted and a failed photo and a confirmed bay."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "store.db")
        try:
            device, _ = store.add_device("walker-metrics", "walker")
            session = store.create_session(device)
            done, failed = (store.add_count(
                session_id=session.id, device_id=device.id, client_id=name, source="ws",
                location=None, photo_hash=f"{k:064x}", photo_bytes=1)[0]
                for k, name in enumerate(("done", "failed")))
            store.finish_count(done.id, {"rows": [], "boxes": []})
            store.fail_count(failed.id, "bad_image", "not a photo")
            store.confirm_count(done.id, device)
            metrics = GatewayMetrics(store, lambda: ["folder"])
            metrics.observe_count({"detect": 12.0})
            metrics.triton_errors.inc()
            body, _ = metrics.render()
        finally:
            store.close()
    return _sample_names(body.decode())


def _dashboard_metrics(dashboard: dict[str, Any]) -> set[str]:
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return {m for expr in exprs for m in re.findall(r"\b(?:shelfcount|nv)_[a-z_]+\b", expr)}


@pytest.mark.triton
def test_the_dashboard_asks_only_for_metrics_that_exist(triton) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    asked = _dashboard_metrics(dashboard)
    assert any(m.startswith("shelfcount_") for m in asked) and any(m.startswith("nv_")
                                                                   for m in asked)
    if triton.server is None:
        pytest.skip("an external Triton (SHELFCOUNT_TRITON_URL): its metrics port is unknown")
    served = _gateway_samples()
    answer = requests.get(triton.server.metrics_url, timeout=10)
    assert answer.status_code == 200
    served |= _sample_names(answer.text)
    assert sorted(asked - served) == []
    configmap = render()[("ConfigMap", "prod-shelfcount-dashboard")]
    assert json.loads(configmap["data"]["shelfcount.json"]) == dashboard


def test_the_probes_answer_as_the_chart_expects(tmp_path: Path) -> None:
    """Triton away: not healthy, but ready (photos are stored and wait) and alive."""
    with running_gateway(tmp_path / "data", "127.0.0.1:1") as server:
        def get(query: str) -> requests.Response:
            return requests.get(f"{server.base_url}/healthz{query}", timeout=10)

        assert get("").status_code == 503 and get("").json()["triton"] == "unavailable"
        ready = get("?probe=ready")
        assert ready.status_code == 200 and ready.json()["store"] == "ok"
        assert get("?probe=live").json() == {"status": "ok", "gateway": "ok"}
        bad = get("?probe=maybe")
        assert bad.status_code == 400 and bad.json()["code"] == "bad_request"
