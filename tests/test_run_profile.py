"""scripts/run_profile.sh, on real git and DVC: it runs a profile's pipeline in a checkout of its own and
copies the reports, with the params.yaml and commit they came from, to reports/profiles/<profile>/; a
checkout holding other values, or an unknown profile, stops it with a one-line error and writes nothing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from deceptionlab.reporting.claims import COLUMNS

ROOT = Path(__file__).resolve().parents[1]
PROFILE = {"base_model": {"pypi_wheel": ["model-part1==0.9.0", "model-part2==0.9.0"]}}
# The profile checkout's pipeline: its claims stage, standing in for the whole pipeline.
CLAIMS_STAGE = {"stages": {"report_claims": {
    "cmd": f"{sys.executable} -c \"import pathlib; pathlib.Path('reports').mkdir(exist_ok=True); "
           f"pathlib.Path('reports/claims.csv').write_text('{','.join(COLUMNS)}\\\\n'); "
           "pathlib.Path('reports/claims.md').write_text('# Claims'); pathlib.Path('reports/claims.png').write_text('')\"",
    "params": ["base_model"],
    "outs": [{"reports/claims.csv": {"cache": False}}, {"reports/claims.md": {"cache": False}}],
    "plots": [{"reports/claims.png": {"cache": False}}]}}}


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.org", "PYTHONPATH": str(ROOT / "src"),
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env)
    assert not check or result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def repository(folder: Path, params: dict) -> Path:
    """A git and DVC repository with the script, the claims stage, ``params`` as params.yaml and PROFILE
    as params/other.yaml."""
    folder.mkdir()
    run("git", "init", "-q", cwd=folder)
    run(sys.executable, "-m", "dvc", "init", "-q", cwd=folder)
    shutil.copytree(ROOT / "scripts", folder / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".gitignore", folder / ".gitignore")
    (folder / "params").mkdir()
    (folder / "params" / "other.yaml").write_text("# another model\n" + yaml.safe_dump(PROFILE))
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    (folder / "dvc.yaml").write_text(yaml.safe_dump(CLAIMS_STAGE))
    (folder / "reports" / "profiles" / "earlier").mkdir(parents=True)  # a profile's reports, copied before
    (folder / "reports" / "profiles" / "earlier" / "claims.csv").write_text(",".join(COLUMNS) + "\n")
    (folder / "reports" / "dose.md").write_text("# the default model's dose, from another pipeline\n")
    run("git", "add", "-A", cwd=folder)
    run("git", "commit", "-q", "-m", "first", cwd=folder)
    return folder


def test_a_profile_runs_in_a_worktree_and_its_reports_params_and_commit_are_copied_back(tmp_path):
    workspace = repository(tmp_path / "workspace", {"base_model": {"pypi_wheel": "default==1.0"}})
    result = run("scripts/run_profile.sh", "other", cwd=workspace)
    tree, dest = workspace / ".profiles" / "other", workspace / "reports" / "profiles" / "other"
    assert "reports of other: reports/profiles/other" in result.stdout
    assert yaml.safe_load((tree / "params.yaml").read_text()) == PROFILE  # the profile ran there, not here
    assert not (workspace / "reports" / "claims.csv").exists()
    assert str(tree) in run("git", "worktree", "list", cwd=workspace).stdout
    assert not (tree / "reports" / "profiles" / "earlier").exists()  # its claims are its own model's only
    assert str(workspace / ".dvc" / "cache") in (tree / ".dvc" / "config.local").read_text()  # one cache
    assert sorted(path.name for path in dest.iterdir()) == ["SOURCE.md", "claims.csv", "claims.md", "claims.png", "params.yaml"]
    assert (dest / "claims.csv").read_text() == ",".join(COLUMNS) + "\n"
    assert yaml.safe_load((dest / "params.yaml").read_text()) == PROFILE
    commit = run("git", "rev-parse", "HEAD", cwd=workspace).stdout.strip()
    source = (dest / "SOURCE.md").read_text()
    assert f"commit {commit}" in source and "its pipeline (dvc.yaml): up to date." in source
    assert not list((workspace / "reports" / "profiles").glob(".other.*"))  # no staging folder left
    # A second run reuses the checkout: nothing to rerun, the same reports.
    assert "didn't change, skipping" in run("scripts/run_profile.sh", "other", cwd=workspace).stdout
    assert (dest / "claims.csv").read_text() == ",".join(COLUMNS) + "\n"


def test_a_checkout_with_other_values_or_an_unknown_profile_is_refused_and_nothing_is_written(tmp_path):
    workspace = repository(tmp_path / "workspace", {"base_model": {"pypi_wheel": "default==1.0"}})
    tree = repository(tmp_path / "tree", {"base_model": {"pypi_wheel": "another==1.0"}})
    result = run("env", f"PROFILE_TREE={tree}", "scripts/run_profile.sh", "other", cwd=workspace, check=False)
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: {tree}/params.yaml: not the values of params/other.yaml; delete its checkout to start again"
    result = run("scripts/run_profile.sh", "absent", cwd=workspace, check=False)
    assert (result.returncode, result.stderr.strip()) == (2, "error: params/absent.yaml: no such profile (params/ holds them)")
    assert sorted((workspace / "reports" / "profiles").iterdir()) == [workspace / "reports" / "profiles" / "earlier"]
    assert not (workspace / ".profiles").exists()
    assert not (tree / "reports" / "claims.csv").exists()  # its pipeline did not run
