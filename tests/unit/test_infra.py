"""Deployment files, validated offline: the compose file against the Compose specification,
the Kubernetes manifests against the Kubernetes API schemas (strict: unknown fields fail),
and both against the settings loader, so a misspelt variable or a contradiction fails here.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from agents.cli import main
from streams.settings import load_settings

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "infra" / "compose.yaml"
K8S = ROOT / "infra" / "k8s"
KUBERNETES_VERSION = "1.30.0"
# `kapparec serve` (the HTTP API) is provided by its own module, merged separately.
COMMANDS = set(main.commands) | {"serve"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with no variable set: the default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_file_follows_the_compose_spec() -> None:
    spec_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(spec_file.joinpath("compose-spec.json").read_text())
    errors = list(
        jsonschema.Draft7Validator(schema).iter_errors(yaml.safe_load(COMPOSE.read_text()))
    )
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == [p.name for p in _manifests()]


def test_compose_settings_load() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    for name in ("worker", "api", "topics"):
        service = compose["services"][name]
        env = {k: _interpolate(str(v)) for k, v in service["environment"].items()}
        settings = load_settings(env=env)  # unknown or contradictory variables raise
        assert settings.kafka_bootstrap and settings.redis_url
        assert service["command"][0] in COMMANDS
    replicas = compose["services"]["worker"]["deploy"]["replicas"]
    assert replicas <= settings.partitions


def test_compose_kafka_keeps_its_log_on_the_volume() -> None:
    # Once any KAFKA_* variable is set, the image ignores its own server.properties: without
    # KAFKA_LOG_DIRS the log would go to /tmp/kafka-logs, inside the container.
    kafka = yaml.safe_load(COMPOSE.read_text())["services"]["kafka"]
    mounts = [PurePosixPath(v.split(":")[1]) for v in kafka["volumes"]]
    log_dirs = str(kafka["environment"].get("KAFKA_LOG_DIRS", "/tmp/kafka-logs"))
    for log_dir in map(PurePosixPath, log_dirs.split(",")):
        assert any(log_dir.is_relative_to(m) for m in mounts), (log_dir, mounts)


def _k8s_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for doc in _docs(K8S / "configmap.yaml") + _docs(K8S / "secret.example.yaml"):
        if doc["metadata"]["name"] in ("kapparec-settings", "kapparec-secrets"):
            env |= doc.get("data") or doc.get("stringData") or {}
    return env


def test_k8s_settings_load_and_workers_fit_partitions() -> None:
    settings = load_settings(env=_k8s_env())
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.redis_url.startswith("rediss://")
    worker = _docs(K8S / "worker.yaml")[0]
    assert worker["spec"]["replicas"] <= settings.partitions
    tls = _docs(K8S / "secret.example.yaml")[1]["stringData"]
    for path in (settings.kafka_ssl_cafile, settings.redis_ssl_cafile):
        assert path.startswith("/etc/kapparec/tls/") and Path(path).name in tls


@pytest.mark.parametrize("name", ["worker.yaml", "api.yaml"])
def test_k8s_containers_run_known_commands(name: str) -> None:
    pod = _docs(K8S / name)[0]["spec"]["template"]["spec"]
    for container in pod["containers"]:
        assert container["args"][0] in COMMANDS


@pytest.mark.parametrize("path", _manifests(), ids=lambda p: p.name)
def test_k8s_read_only_containers_have_a_writable_temp_dir(path: Path) -> None:
    # `kapparec serve` with several processes keeps its metrics in a temporary directory.
    for doc in _docs(path):
        pod = doc.get("spec", {}).get("template", {}).get("spec")
        if pod is None:
            continue
        writable = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in pod["containers"]:
            if not container.get("securityContext", {}).get("readOnlyRootFilesystem"):
                continue
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            tmp = PurePosixPath(env.get("TMPDIR") or "/tmp")
            mounts = [
                PurePosixPath(m["mountPath"])
                for m in container.get("volumeMounts", [])
                if m["name"] in writable and not m.get("readOnly")
            ]
            assert any(tmp.is_relative_to(m) for m in mounts), (container["name"], tmp)


def test_dockerfile_runs_the_cli() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["kapparec"]' in text and 'CMD ["worker"]' in text
    env = dict(re.findall(r"(KAPPAREC_[A-Z_]+)=(\S+)", text))
    assert env and load_settings(env=env).state_dir == Path("/var/lib/kapparec")
