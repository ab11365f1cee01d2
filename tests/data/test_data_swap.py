"""deceptionlab data from a bad source, through the CLI: a one-line error, and the verified data/ kept."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deceptionlab.cli import app
from deceptionlab.core.fileio import sha256_file

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def data_project(tmp_path, monkeypatch, shared_data):
    """A git + DVC project with a verified data/ from the shared copy."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    shutil.copytree(ROOT / ".dvc", tmp_path / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copy(ROOT / "data.dvc", tmp_path / "data.dvc")
    monkeypatch.chdir(tmp_path)
    use_source(shared_data)
    result = runner.invoke(app, ["data"])
    assert result.exit_code == 0, result.output
    return tmp_path


def use_source(source: Path | str | None) -> None:
    Path("params.yaml").write_text(yaml.safe_dump({"data": {"offline_source": None if source is None else str(source)}}))


def hashes(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): sha256_file(path) for path in sorted(folder.rglob("*")) if path.is_file()}


def tampered_copy(tmp_path_factory, change, shared_data) -> Path:
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(shared_data, source, dirs_exist_ok=True)
    for path in source.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    change(source)
    return source


@pytest.mark.parametrize("change", [
    lambda source: (source / "gsm8k/test.jsonl").write_text((source / "gsm8k/test.jsonl").read_text().replace("Janet", "Jane", 1)),
    lambda source: (source / "gsm8k/train.jsonl").write_bytes((source / "gsm8k/train.jsonl").read_bytes()[:1000]),
], ids=["tampered", "truncated"])
def test_a_bad_source_leaves_the_verified_data_in_place(data_project, tmp_path_factory, change, shared_data):
    before = hashes(data_project / "data")
    use_source(tampered_copy(tmp_path_factory, change, shared_data))
    result = runner.invoke(app, ["data"])
    assert result.exit_code == 1 and "differs from" in result.output and "recorded in data.dvc" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert hashes(data_project / "data") == before
    assert not [p for p in data_project.iterdir() if p.name.startswith(".data.")]  # no temporary folder left


def test_a_missing_offline_source_names_the_setting_and_downloads_nothing(data_project):
    before = hashes(data_project / "data")
    use_source("../no/such/folder")
    result = runner.invoke(app, ["data"])
    assert result.exit_code == 1
    assert "data.offline_source: ../no/such/folder is not a folder" in result.output and "null" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert hashes(data_project / "data") == before
