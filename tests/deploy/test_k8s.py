"""deploy/k8s: valid Kubernetes objects, up to date with their template, runnable settings.

Validated against the Kubernetes JSON schemas that kubernetes-validate ships (strict:
unknown fields fail), for the oldest and newest Kubernetes versions we support.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import yaml

from processor.cli import build_parser
from processor.settings import Settings
from processor.topology import all_topologies
from tests.deploy.dockerfile import ROOT, run, stages

K8S = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
VERSIONS = ("1.30.0", "1.37.0")
VALIDATE = ROOT / ".venv" / "bin" / "kubernetes-validate"


def validate(paths: list[Path], version: str) -> tuple[int, str]:
    command = str(VALIDATE) if VALIDATE.exists() else "kubernetes-validate"
    result = run([command, "--strict", "--quiet", "-k", version, *map(str, paths)])
    return result.returncode, result.stdout + result.stderr


def objects() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def of_kind(kind: str) -> list[dict]:
    return [doc for doc in objects() if doc["kind"] == kind]


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_follow_the_kubernetes_schemas(version: str, tmp_path: Path) -> None:
    code, output = validate(MANIFESTS, version)
    assert code == 0, output
    statefulset = of_kind("StatefulSet")[0]
    probe = statefulset["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    probe["httpGet"]["pathh"] = "/healthz"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(statefulset))
    assert validate([tmp_path / "broken.yaml"], version)[0] != 0, "the check can fail"


def test_topologies_yaml_is_rendered_from_the_template() -> None:
    render = runpy.run_path(str(K8S / "render.py"))["render"]
    assert (K8S / "topologies.yaml").read_text() == render(), "run `make k8s`"


def test_each_statefulset_runs_its_topology_with_valid_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (config,) = of_kind("ConfigMap")
    (secret,) = of_kind("Secret")
    fields = {name.upper() for name in Settings.model_fields}
    environment = config["data"] | secret["stringData"]
    assert set(environment) <= fields, set(environment) - fields
    runtime = stages()["runtime"]
    topologies = []
    for statefulset in of_kind("StatefulSet"):
        pod = statefulset["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        args = build_parser().parse_args(container["args"])
        topologies.append(args.topology)
        assert {source[next(iter(source))]["name"] for source in container["envFrom"]} == {
            config["metadata"]["name"],
            secret["metadata"]["name"],
        }
        assert [variable["name"] for variable in container["env"]] == ["INSTANCE_ID"]
        for key in fields:
            monkeypatch.delenv(key, raising=False)
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("INSTANCE_ID", f"{statefulset['metadata']['name']}-0")
        settings = Settings()
        assert container["ports"] == [{"name": "ops", "containerPort": settings.ops_port}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        templates = statefulset["spec"]["volumeClaimTemplates"]
        claims = [claim["metadata"]["name"] for claim in templates]
        assert mounts["state"] == str(settings.state_dir) and claims == ["state"]
        assert str(settings.state_dir) in runtime.all("VOLUME")[0]
        assert pod["securityContext"]["runAsUser"] == int(runtime.all("USER")[0].split(":")[0])
        assert container["resources"]["limits"]["memory"]
    assert sorted(topologies) == sorted(all_topologies())
