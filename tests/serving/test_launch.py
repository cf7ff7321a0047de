"""What a served Bento reads from its environment: relative paths, the version it publishes,
and `lifecycle serve` refusing a port that is taken."""

from __future__ import annotations

import socket
import subprocess
import tomllib
from pathlib import Path

import pytest

from lifecycle.serving.settings import ServeSettings, missing_files, resolve_paths

from ..servers import BIN, ROOT


def test_relative_paths_resolve_from_the_launch_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    given = ServeSettings(
        lookup=Path("out/scores.parquet"),
        events=Path("../events.parquet"),
        actions=Path("/etc/actions.yaml"),
    )
    resolved = resolve_paths(given, tmp_path)
    assert resolved.lookup == tmp_path / "out" / "scores.parquet"
    assert resolved.events == tmp_path.parent / "events.parquet"
    assert resolved.actions == Path("/etc/actions.yaml")
    assert resolved.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"  # the default store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///store/m.db?timeout=5")
    assert resolve_paths(given, tmp_path).tracking_uri == (
        f"sqlite:///{tmp_path / 'store' / 'm.db'}?timeout=5"
    )
    for kept in ("sqlite:////srv/m.db", "http://mlflow:5000", "postgresql://h/db"):
        assert resolve_paths(ServeSettings(tracking_uri=kept), tmp_path).tracking_uri == kept


def test_missing_files_name_the_value_and_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    given = ServeSettings(lookup=Path("scores.parquet"))
    problem = missing_files(given, tmp_path)
    assert problem is not None
    assert f"LIFECYCLE_LOOKUP=scores.parquet: nothing at {tmp_path / 'scores.parquet'}" in problem
    assert f"MLFLOW_TRACKING_URI unset (default mlflow.db): no MLflow store at {tmp_path}" in (
        problem
    )
    assert f"relative paths are read from {tmp_path}, the folder the server" in problem
    (tmp_path / "scores.parquet").touch()
    (tmp_path / "mlflow.db").touch()
    assert missing_files(given, tmp_path) is None
    absolute = ServeSettings(lookup=tmp_path / "gone.parquet", tracking_uri="http://mlflow:5000")
    problem = missing_files(absolute, tmp_path)
    assert problem == f"LIFECYCLE_LOOKUP={tmp_path / 'gone.parquet'}: nothing at " + str(
        tmp_path / "gone.parquet"
    )


def test_service_version_without_the_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Bento does not install the project: the version comes from its pyproject.toml."""
    import importlib.metadata

    from lifecycle.serving.service import service_version

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert service_version() == declared

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert service_version() == declared


def test_lifecycle_serve_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        store = f"sqlite:///{tmp_path / 'none.db'}"
        done = subprocess.run(
            [str(BIN / "lifecycle"), "serve", "--port", str(port), "--tracking-uri", store],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0] and "--port" in lines[0]
