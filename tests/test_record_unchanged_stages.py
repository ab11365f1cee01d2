"""scripts/record_unchanged_stages.py on a real DVC repository: after a change to a dependency, the stages
it names as unchanged take the new dependency hashes while an output absent from the workspace and the
cache keeps its recorded hash (where `dvc commit -f` refuses); a stage named with --rerun stays stale."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = {"stages": {
    "make": {"cmd": f"{sys.executable} -c \"import shutil; shutil.copy('input.txt', 'out.txt')\"",
             "deps": ["code.py", "input.txt"], "outs": ["out.txt"]},
    "report": {"cmd": f"{sys.executable} -c \"import shutil; shutil.copy('out.txt', 'report.txt')\"",
               "deps": ["code.py", "out.txt"], "outs": [{"report.txt": {"cache": False}}]},
}}


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@example.org"}
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env)
    assert not check or result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd, check=check)


def lock(project: Path) -> dict:
    return {name: {entry["path"]: entry["md5"] for entry in stage.get("deps", []) + stage.get("outs", [])}
            for name, stage in yaml.safe_load((project / "dvc.lock").read_text())["stages"].items()}


def test_unchanged_stages_take_the_new_dependency_hashes_and_keep_an_absent_outputs_hash(tmp_path):
    run("git", "init", "-q", cwd=tmp_path)
    dvc("init", "-q", cwd=tmp_path)
    (tmp_path / "code.py").write_text("VALUE = 1\n")
    (tmp_path / "input.txt").write_text("data\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE))
    dvc("repro", "-q", cwd=tmp_path)
    before = lock(tmp_path)
    # The output gone from the workspace and the cache (an adapter of another machine), and a change
    # to the code that leaves results as they were.
    (tmp_path / "out.txt").unlink()
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    (tmp_path / "code.py").write_text("VALUE = 1  # a comment\n")
    assert dvc("commit", "-f", "make", cwd=tmp_path, check=False).returncode != 0  # what the script is for

    result = run(sys.executable, str(ROOT / "scripts" / "record_unchanged_stages.py"), "--rerun", "report",
                 "dvc.yaml", cwd=tmp_path)
    assert result.stdout.splitlines()[:2] == ["recorded: dvc.yaml:make", "left stale: dvc.yaml:report"]
    after = lock(tmp_path)
    assert after["make"]["out.txt"] == before["make"]["out.txt"]  # the absent output's hash, kept
    assert after["make"]["code.py"] != before["make"]["code.py"]  # the new code, recorded
    assert after["report"] == before["report"]
    assert yaml.safe_load(dvc("status", "--json", cwd=tmp_path).stdout) == {
        "make": [{"changed outs": {"out.txt": "not in cache"}}],  # only the absent data, no changed dependency
        "report": [{"changed deps": {"code.py": "modified", "out.txt": "deleted"}}],
    }
