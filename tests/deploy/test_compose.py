"""deploy/compose.yaml: valid Compose, and every pstreams service valid for the CLI and settings.

No Docker here: the file is validated against the Compose specification's JSON schema
as check-jsonschema ships it, and each service of the project's image is checked by
parsing its command with the real CLI parser and its environment with the settings model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from processor.cli import build_parser
from processor.settings import Settings
from processor.topology import all_topologies
from tests.deploy.dockerfile import ROOT, run, stages

COMPOSE = ROOT / "deploy" / "compose.yaml"
IMAGE = "personalization-streams:local"
CHECK_JSONSCHEMA = Path(ROOT / ".venv" / "bin" / "check-jsonschema")


def check_compose_schema(path: Path) -> tuple[int, str]:
    command = "check-jsonschema" if not CHECK_JSONSCHEMA.exists() else str(CHECK_JSONSCHEMA)
    result = run([command, "--builtin-schema", "vendor.compose-spec", str(path)])
    return result.returncode, result.stdout + result.stderr


def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def project_services() -> dict[str, dict]:
    return {name: spec for name, spec in services().items() if spec.get("image") == IMAGE}


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    code, output = check_compose_schema(COMPOSE)
    assert code == 0, output
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["redpanda"]["comand"] = ["a typo"]
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    assert check_compose_schema(tmp_path / "broken.yaml")[0] != 0, "the check can fail"


@pytest.mark.parametrize("name", sorted(project_services()))
def test_service_command_and_environment_are_valid(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = project_services()[name]
    args = build_parser().parse_args(spec["command"])
    assert args.handler is not None
    fields = {field.upper() for field in Settings.model_fields}
    environment = {key: str(value) for key, value in spec["environment"].items()}
    assert set(environment) <= fields, f"not settings: {set(environment) - fields}"
    for key in fields:
        monkeypatch.delenv(key, raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.state_dir == Path("/var/lib/pstreams")
    if args.command == "run":
        volumes = {mount.split(":")[1]: mount.split(":")[0] for mount in spec["volumes"]}
        assert volumes[str(settings.state_dir)] == f"{args.topology}-state"


def test_every_topology_runs_once_with_its_own_volume() -> None:
    runs = {
        spec["command"][1]: name
        for name, spec in project_services().items()
        if spec["command"][0] == "run"
    }
    assert sorted(runs) == sorted(all_topologies())
    declared = yaml.safe_load(COMPOSE.read_text())["volumes"]
    assert {f"{topology}-state" for topology in runs} <= set(declared)
    state_volume = stages()["runtime"].all("VOLUME")[0]
    assert "/var/lib/pstreams" in state_volume, "the image's volume is where the state goes"


def test_debezium_produces_what_the_topologies_read() -> None:
    """The connector mirrors Confluent's PostgresCdcSourceV2 with after.state.only=true
    (docs/decoding.md) on the topics read."""
    config = json.loads((ROOT / "deploy" / "debezium" / "postgres-source.json").read_text())
    topology_env = project_services()["interaction_data"]["environment"]
    assert config["topic.prefix"] == topology_env["PG_TOPIC_PREFIX"]
    assert sorted(config["table.include.list"].split(",")) == [
        "user_data.categories",
        "user_data.items",
        "user_data.reviews",
        "user_data.users",
    ]
    for converter in ("key.converter", "value.converter"):
        assert config[converter] == "io.confluent.connect.avro.AvroConverter"
        assert config[f"{converter}.schema.registry.url"] == topology_env["SCHEMA_REGISTRY_URL"]
    assert config["transforms.unwrap.type"] == "io.debezium.transforms.ExtractNewRecordState"
    assert config["tombstones.on.delete"] == "true"
    assert "wal_level=logical" in services()["postgres"]["command"]
