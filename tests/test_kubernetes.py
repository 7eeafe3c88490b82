"""deploy/kubernetes: the same services as docker-compose.yml, with the same commands, the same
settings each (and only those), the same health checks, and secrets from the same .env. The
manifests' validity against the Kubernetes API's schemas is `make lint`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .test_compose import APP, SECRETS, compose, environment, health_command

KUBERNETES = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"


def manifests() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests() if m["kind"] == kind}


def container(service: str) -> dict[str, Any]:
    [only] = of_kind("Deployment")[service]["spec"]["template"]["spec"]["containers"]
    return only


def settings_of(service: str) -> dict[str, str]:
    """The container's variables: its own, and every key of the ConfigMaps it takes."""
    maps = of_kind("ConfigMap")
    found: dict[str, str] = {}
    for source in container(service).get("envFrom", []):
        found |= maps[source["configMapRef"]["name"]]["data"]
    for variable in container(service).get("env", []):
        secret = variable.get("valueFrom", {}).get("secretKeyRef")
        found[variable["name"]] = f"secret:{secret['key']}" if secret else variable["value"]
    return found


def test_every_manifest_is_applied_and_every_image_can_be_renamed() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    renamed = {image["name"] for image in kustomization["images"]}
    used = {container(service)["image"].split(":")[0] for service in APP}
    assert used == renamed


def test_each_service_runs_as_in_compose_with_the_same_settings_and_health_check() -> None:
    services = compose()["services"]
    env = SECRETS | {"TROIKA_LLM_API_KEY": "sk-test"}
    for service in APP:
        assert container(service)["command"] == services[service]["command"], service
        ours = settings_of(service)
        # POSTGRES_PASSWORD is there only to be put into TROIKA_DATABASE_URL, as compose does
        names = set(ours) - {"POSTGRES_PASSWORD"}
        assert names == set(environment(service, env)), service
        probe = container(service).get("livenessProbe", {}).get("exec")
        if probe:
            assert probe["command"] == health_command(service), service
    for agent in ("planner", "executor", "reviewer"):
        assert not {"TROIKA_SECRET_KEY", "TROIKA_DATABASE_URL", "POSTGRES_PASSWORD"} & set(
            settings_of(agent)
        )
    assert not any(value.startswith("secret:") for value in settings_of("web").values())
    database = settings_of("gateway")["TROIKA_DATABASE_URL"]
    assert database == "postgresql+asyncpg://troika:$(POSTGRES_PASSWORD)@postgres:5432/troika"
    names = [v["name"] for v in container("gateway")["env"]]
    assert names.index("POSTGRES_PASSWORD") < names.index("TROIKA_DATABASE_URL")  # expandable


def test_secrets_come_from_the_env_file_compose_uses() -> None:
    wanted = set()
    for manifest in manifests():
        spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for each in spec.get("containers", []):
            for variable in each.get("env", []):
                if secret := variable.get("valueFrom", {}).get("secretKeyRef"):
                    assert secret["name"] == "troika"
                    wanted.add(secret["key"])
    assert wanted <= set(SECRETS) | {"TROIKA_LLM_API_KEY"}
    assert "MINIO_ROOT_PASSWORD" in wanted  # MinIO's and its set-up job's, no one else's
    holders = [name for name, m in of_kind("Deployment").items()
               if "MINIO_ROOT_PASSWORD" in str(m)]  # fmt: skip
    assert holders == []


def test_containers_run_unprivileged() -> None:
    for service in APP:
        pod = of_kind("Deployment")[service]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert container(service)["securityContext"]["allowPrivilegeEscalation"] is False
        assert container(service)["securityContext"]["capabilities"]["drop"] == ["ALL"]
