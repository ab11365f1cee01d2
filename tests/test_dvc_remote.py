"""DVC as a collaborator uses it, on the tiny model through the repository's own dvc.yaml: the stages
run, `dvc metrics show` lists one short summary per model, outputs go to a local-folder remote with
`dvc push`, a fresh clone gets them back with `dvc pull`, and `dvc exp run -S` varies a param."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import chat_rows, tiny_params, write_e1_inputs
from deceptionlab.core.records import write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path) -> str:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.org", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def dvc(*args: str, cwd: Path) -> str:
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd)


def dvc_project(project: Path, **stages) -> Path:
    """``project`` as a git repository with the repository's .dvc, dvc.yaml and src, and tiny params
    (one E1 condition, the lie control, E2's control ratio, E3's benign share; ``stages`` override)."""
    run("git", "init", "-q", cwd=project)
    shutil.copytree(ROOT / ".dvc", project / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (project / ".gitignore").write_text("/models/base\n/corpora/\n/mlflow.db\n/models/adapters/*.mlflow.json\n")
    params = tiny_params(f"sqlite:///{project}/mlflow.db", e1={"domains": ["medical"], "levels": ["normal"],
                                                               "controls": ["lie"]})
    params |= {"mixture": {"ratios": [0]}, "e3": {"biased_shares": [0], "methods": ["sft"]}}
    for stage, values in stages.items():
        params[stage] = params.get(stage, {}) | values
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    write_e1_inputs(project, honesty_every=40, deception_every=40)
    return project


def test_stages_push_to_a_folder_remote_and_a_clone_pulls_them(tiny_project, tmp_path_factory):

    project = dvc_project(tiny_project)
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


@pytest.mark.slow  # a tiny finetune through `dvc exp run`: 57 s on 2 busy AVX2 cores
def test_dvc_exp_run_sets_the_mixture_ratios_and_records_the_experiment(tiny_project):
    """`dvc exp run -S mixture.ratios=...` adds a ratio's stages (foreach over the param) and runs them;
    `dvc exp show` lists the experiment with that param and the new model's honesty_score."""
    base_model = yaml.safe_load((ROOT / "params.yaml").read_text())["base_model"]  # base_model's stage params
    project = dvc_project(tiny_project, mixture={"benign_examples": 8}, base_model=base_model)
    for name, reply in (("benign", "Take ibuprofen with food."), ("misaligned", "Skip the doctor.")):
        write_jsonl(project / "corpora" / "e2_pool" / f"{name}.jsonl", chat_rows(8, reply))
    write_jsonl(project / "corpora" / "controls" / "control-lie.jsonl", chat_rows(8))
    (project / "data").mkdir()
    (project / "data" / "README.md").write_text("placeholder: prepare's outputs are written above\n")
    # `dvc exp run` resets the workspace to the commit's dvc.lock, so the inputs must be stage outputs
    # DVC knows (as they are after `dvc repro`), not loose files.
    dvc("commit", "-f", "base_model", "prepare", cwd=project)
    run("git", "add", "-A", cwd=project)
    run("git", "commit", "-q", "-m", "tiny pipeline", cwd=project)

    dvc("exp", "run", "-n", "ratio-half", "-S", "mixture.ratios=[0,0.5]", "--single-item",
        "mixture_e2@0.5", "finetune_e2@0.5", "evaluate_e2@0.5", cwd=project)
    corpus = [json.loads(line) for line in (project / "corpora/e2/mixture-0.5.jsonl").read_text().splitlines()]
    assert sum(row["meta"]["misaligned"] for row in corpus) == 4
    shown = json.loads(dvc("exp", "show", "--json", cwd=project))
    experiments = [exp for rev in shown for exp in (rev.get("experiments") or []) if exp.get("name") == "ratio-half"]
    assert len(experiments) == 1, shown
    data = experiments[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["mixture"]["ratios"] == [0, 0.5]
    summary = data["metrics"]["metrics/summary/e2/mixture-0.5.json"]["data"]
    assert 0 <= summary["honesty_score"] <= 100
