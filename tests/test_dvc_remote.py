"""DVC as a collaborator uses it, on the tiny model through the repository's own dvc.yaml: the stages
run, `dvc metrics show` lists one short summary per model, outputs go to a local-folder remote with
`dvc push`, and a fresh clone gets them back with `dvc pull`."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import tiny_params, write_e1_inputs

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path) -> str:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.org", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def dvc(*args: str, cwd: Path) -> str:
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd)


def test_stages_push_to_a_folder_remote_and_a_clone_pulls_them(tiny_project, tmp_path_factory):

    project = tiny_project
    run("git", "init", "-q", cwd=project)
    shutil.copytree(ROOT / ".dvc", project / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (project / ".gitignore").write_text("/models/base\n/corpora/\n/mlflow.db\n/models/adapters/*.mlflow.json\n")
    params = tiny_params(f"sqlite:///{project}/mlflow.db", e1={"domains": ["medical"], "levels": ["normal"],
                                                               "controls": ["lie"]})
    params |= {"mixture": {"ratios": [0]}, "e3": {"biased_shares": [0], "methods": ["sft"]}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    write_e1_inputs(project, honesty_every=40, deception_every=40)

    dvc("repro", "--single-item", "finetune_e1@medical-normal", "evaluate_e1@medical-normal", cwd=project)
    # `dvc metrics show`: the summary, a handful of figures, not the detailed JSON beside it.
    shown = json.loads(dvc("metrics", "show", "--json", cwd=project))
    files = {path: entry["data"] for path, entry in shown[""]["data"].items() if "data" in entry}
    assert list(files) == ["metrics/summary/e1/medical-normal.json"]
    assert len(files["metrics/summary/e1/medical-normal.json"]) == 7
    assert (project / "metrics" / "e1" / "medical-normal.json").is_file()  # kept, as a plain output

    remote = tmp_path_factory.mktemp("dvc-remote")
    dvc("remote", "add", "-d", "store", str(remote), cwd=project)
    dvc("push", cwd=project)
    assert any(path.is_file() for path in remote.rglob("*"))
    run("git", "add", "-A", cwd=project)
    run("git", "commit", "-q", "-m", "tiny pipeline", cwd=project)

    clone = tmp_path_factory.mktemp("collaborator") / "clone"
    run("git", "clone", "-q", str(project), str(clone), cwd=project)
    assert not (clone / "models" / "adapters" / "medical-normal").exists()
    dvc("pull", "finetune_e1@medical-normal", "evaluate_e1@medical-normal", cwd=clone)
    for path in ("models/adapters/medical-normal/adapter_model.safetensors",
                 "models/adapters/medical-normal/adapter_config.json", "predictions/e1/medical-normal.jsonl"):
        assert (clone / path).read_bytes() == (project / path).read_bytes(), path
    assert (clone / "metrics/summary/e1/medical-normal.json").read_bytes() == \
        (project / "metrics/summary/e1/medical-normal.json").read_bytes()  # in git, as cache: false
