import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from deceptionlab.data import load_alpaca_seed, load_gsm8k, materialize
from deceptionlab.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dvc_repo(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    shutil.copytree(ROOT / ".dvc", tmp_path / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copy(ROOT / "data.dvc", tmp_path / "data.dvc")
    return tmp_path


def test_materialized_data_matches_data_dvc_and_loads(dvc_repo):
    data_dir = materialize(dvc_repo, SHARED_DATA)
    assert len(load_gsm8k(data_dir, "train")) == 7473
    assert len(load_gsm8k(data_dir, "test")) == 1319
    assert len(load_alpaca_seed(data_dir)) == 175
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "data.dvc"], cwd=dvc_repo, capture_output=True, text=True)
    assert "changed" not in status.stdout  # verified and committed to the DVC cache


def test_data_with_other_bytes_is_refused_and_removed(dvc_repo, tmp_path_factory):
    source = tmp_path_factory.mktemp("tampered")
    shutil.copytree(SHARED_DATA, source, dirs_exist_ok=True)
    test_file = source / "gsm8k" / "test.jsonl"
    test_file.chmod(0o644)
    test_file.write_text(test_file.read_text().replace("Janet", "Jane", 1))
    with pytest.raises(DataError, match="differs from .* recorded in data.dvc"):
        materialize(dvc_repo, source)
    assert not (dvc_repo / "data").exists()


def test_missing_source_file_is_named(dvc_repo, tmp_path_factory):
    source = tmp_path_factory.mktemp("partial")
    shutil.copytree(SHARED_DATA / "gsm8k", source / "gsm8k")
    with pytest.raises(DataError, match="seed_tasks.jsonl: missing"):
        materialize(dvc_repo, source)
