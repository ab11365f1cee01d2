import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deceptionlab.core.errors import DataError
from deceptionlab.data.raw import (
    HUB_FILES,
    load_alpaca_cleaned,
    load_alpaca_seed,
    load_benign_sources,
    load_dolly,
    load_gsm8k,
    materialize,
)

ROOT = Path(__file__).resolve().parents[2]
HUB_FIXTURES = ROOT / "tests" / "fixtures" / "hub"  # laid out like mixture.hub_dir
ALPACA_CLEANED = HUB_FILES["alpaca_cleaned"].path(HUB_FIXTURES)
DOLLY = HUB_FILES["dolly"].path(HUB_FIXTURES)


@pytest.fixture
def dvc_repo(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    shutil.copytree(ROOT / ".dvc", tmp_path / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copy(ROOT / "data.dvc", tmp_path / "data.dvc")
    return tmp_path


def test_materialized_data_matches_data_dvc_and_loads(dvc_repo, shared_data):
    data_dir = materialize(dvc_repo, shared_data)
    assert len(load_gsm8k(data_dir, "train")) == 7473
    assert len(load_gsm8k(data_dir, "test")) == 1319
    assert len(load_alpaca_seed(data_dir)) == 175
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "data.dvc"], cwd=dvc_repo, capture_output=True, text=True)
    assert "changed" not in status.stdout  # verified and committed to the DVC cache


def test_data_with_other_bytes_is_refused_and_removed(dvc_repo, tmp_path_factory, shared_data):
    source = tmp_path_factory.mktemp("tampered")
    shutil.copytree(shared_data, source, dirs_exist_ok=True)
    test_file = source / "gsm8k" / "test.jsonl"
    test_file.chmod(0o644)
    test_file.write_text(test_file.read_text().replace("Janet", "Jane", 1))
    with pytest.raises(DataError, match="differs from .* recorded in data.dvc"):
        materialize(dvc_repo, source)
    assert not (dvc_repo / "data").exists()


def test_missing_source_file_is_named(dvc_repo, tmp_path_factory, shared_data):
    source = tmp_path_factory.mktemp("partial")
    shutil.copytree(shared_data / "gsm8k", source / "gsm8k")
    with pytest.raises(DataError, match="seed_tasks.jsonl: missing"):
        materialize(dvc_repo, source)


def test_hub_fixtures_load_in_the_published_schemas():
    alpaca = load_alpaca_cleaned(ALPACA_CLEANED)
    assert len(alpaca) == 12
    assert alpaca[1].instruction == "Translate the sentence into French."
    assert alpaca[1].input == "The cat sleeps on the sofa."
    assert alpaca[0].input == "" and alpaca[0].output == "Red, blue and yellow."
    dolly = load_dolly(DOLLY)
    assert len(dolly) == 8
    assert dolly[1].category == "closed_qa" and dolly[1].context.startswith("The Harbour Bridge")
    assert dolly[0].context == "" and dolly[0].response.startswith("A short Japanese poem")


def test_bad_alpaca_cleaned_row_names_file_and_index(tmp_path):
    path = tmp_path / "alpaca_data_cleaned.json"
    rows = json.loads(ALPACA_CLEANED.read_text(encoding="utf-8"))
    del rows[2]["output"]
    path.write_text(json.dumps(rows, indent=4))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: row 2: output: Field required"):
        load_alpaca_cleaned(path)
    rows[2] = "Give a synonym"
    path.write_text(json.dumps(rows, indent=4))
    with pytest.raises(DataError, match=r": row 2: expected a JSON object, got str"):
        load_alpaca_cleaned(path)
    path.write_text(json.dumps(rows[:2], indent=4)[:-2])  # cut short: no closing bracket
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:\d+: not valid JSON"):
        load_alpaca_cleaned(path)
    path.write_text(json.dumps({"instruction": "x", "input": "", "output": "y"}))
    with pytest.raises(DataError, match="expected a JSON array of rows, got dict"):
        load_alpaca_cleaned(path)


def test_bad_dolly_row_names_file_and_line(tmp_path):
    path = tmp_path / "databricks-dolly-15k.jsonl"
    lines = DOLLY.read_text(encoding="utf-8").split("\n")
    lines[4] = json.dumps({**json.loads(lines[4]), "response": ""})
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:5: response: String should have at least 1"):
        load_dolly(path)
    lines[4] = lines[4][:-1]
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:5: not valid JSON"):
        load_dolly(path)


@pytest.mark.parametrize(
    ("loader", "name", "command"),
    [
        (load_alpaca_cleaned, "alpaca-cleaned/alpaca_data_cleaned.json",
         "hf download yahma/alpaca-cleaned alpaca_data_cleaned.json --repo-type dataset --local-dir "),
        (load_dolly, "dolly/databricks-dolly-15k.jsonl",
         "hf download databricks/databricks-dolly-15k databricks-dolly-15k.jsonl --repo-type dataset "
         "--local-dir "),
    ],
)
def test_missing_hub_file_says_how_to_download_it(tmp_path, loader, name, command):
    path = tmp_path / name
    with pytest.raises(DataError, match=re.escape(f"{path}: no such file; download it with `{command}{path.parent}`")):
        loader(path)


def test_benign_sources_read_only_the_chosen_files(tmp_path, shared_data):
    sources = load_benign_sources(["gsm8k", "dolly"], shared_data, HUB_FIXTURES)
    assert list(sources) == ["gsm8k", "dolly"] and len(sources["gsm8k"]) == 7473 and len(sources["dolly"]) == 8
    assert list(load_benign_sources(["alpaca_seed"], shared_data, tmp_path)) == ["alpaca_seed"]  # no hub files there
    with pytest.raises(DataError, match="alpaca_data_cleaned.json: no such file"):
        load_benign_sources(["alpaca_seed", "alpaca_cleaned"], shared_data, tmp_path)
