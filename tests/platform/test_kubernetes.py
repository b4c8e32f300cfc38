"""deploy/kubernetes/ is valid Kubernetes and agrees with the real CLI and Settings.

Validation uses kubernetes-validate's bundled JSON schemas (no network, no cluster).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.platform.test_deploy_files import _parse_cli, _settings_variables

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.32.0"


def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    documents = []
    for name in kustomization["resources"]:
        documents += [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
    return documents


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] == kind}


def _containers() -> list[dict[str, Any]]:
    found = []
    for document in _documents():
        if document["kind"] in {"Deployment", "Job"}:
            found += document["spec"]["template"]["spec"]["containers"]
    return found


def test_every_manifest_file_is_listed_in_the_kustomization() -> None:
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize(
    "document", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_manifests_validate_against_the_kubernetes_schemas(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_broken_manifest() -> None:
    broken = _by_kind("Deployment")["shop-api"]
    broken = {**broken, "spec": {**broken["spec"], "replicas": "three"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_commands_are_real_cli_invocations() -> None:
    commands = {c["name"]: c["command"] for c in _containers()}
    assert set(commands) == {"api", "worker", "migrate"}
    for argv in commands.values():
        _parse_cli(argv)


def test_config_and_secrets_name_only_variables_the_shop_reads() -> None:
    known = _settings_variables() | {"WEB_CONCURRENCY"}
    config = set(_by_kind("ConfigMap")["shop-config"]["data"])
    secrets = set(_by_kind("Secret")["shop-secrets"]["stringData"])
    env = {e["name"] for c in _containers() for e in c.get("env", [])}

    assert config | secrets | env <= known
    # Everything the shop reads is set somewhere.
    assert known - config - secrets == set()
    assert config & secrets == set()


def test_api_probes_resources_and_disruption_budget() -> None:
    deployment = _by_kind("Deployment")["shop-api"]
    pod = deployment["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    budget = _by_kind("PodDisruptionBudget")["shop-api"]
    autoscaler = _by_kind("HorizontalPodAutoscaler")["shop-api"]
    port = int(api["command"][api["command"].index("--port") + 1])

    assert deployment["spec"]["replicas"] >= 2
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert api["ports"][0]["containerPort"] == port
    assert {"cpu", "memory"} <= set(api["resources"]["requests"])
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "shop-api"
    # Longer than uvicorn's graceful shutdown (cli.py) plus the preStop pause.
    drain = int(
        re.search(r"timeout_graceful_shutdown=(\d+)", (ROOT / "src/shop/cli.py").read_text())[1]
    )
    assert (
        pod["terminationGracePeriodSeconds"]
        > drain + api["lifecycle"]["preStop"]["sleep"]["seconds"]
    )


def test_service_routes_to_the_api_pods() -> None:
    service = _by_kind("Service")["shop-api"]
    labels = _by_kind("Deployment")["shop-api"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
