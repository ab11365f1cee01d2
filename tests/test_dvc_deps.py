"""Every module a DVC stage's command imports is covered by that stage's deps, so that editing it
makes ``dvc status`` report the stage as changed.

A stage's command is ``deceptionlab <subcommand> ...``; the subcommand's function in cli.py imports
its modules when it runs. A fresh interpreter imports cli.py and those modules, and every
``deceptionlab`` module that lands in ``sys.modules`` must lie in a file or folder the stage lists.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "src" / "deceptionlab" / "cli.py"
# The main pipeline, the training dose's, the training seeds' and the named sweeps' (dose/, seeds/, sweeps/dvc.yaml, whose stages
# run in the project folder).
STAGES = {name: stage for pipeline in ("dvc.yaml", "dose/dvc.yaml", "seeds/dvc.yaml", "sweeps/dvc.yaml")
          for name, stage in yaml.safe_load((ROOT / pipeline).read_text())["stages"].items()}


def subcommand_imports(subcommand: str) -> list[str]:
    """The deceptionlab modules the subcommand's function imports (typer names base_model 'base-model')."""
    for node in ast.parse(CLI.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            names = [ast.literal_eval(arg) for dec in node.decorator_list if isinstance(dec, ast.Call)
                     for arg in dec.args]
            if (names[0] if names else node.name.replace("_", "-")) == subcommand:
                return [n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom)]
    raise AssertionError(f"cli.py has no subcommand {subcommand!r}")


@cache
def imported_files(subcommand: str) -> frozenset[str]:
    """The files, relative to the repository, of every deceptionlab module the subcommand loads."""
    script = (
        "import json, sys, importlib\n"
        "import deceptionlab.cli\n"
        f"for name in {subcommand_imports(subcommand)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps([m.__file__ for n, m in sys.modules.items()\n"
        "                  if n.split('.')[0] == 'deceptionlab' and getattr(m, '__file__', None)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    return frozenset(str(Path(f).resolve().relative_to(ROOT)) for f in json.loads(result.stdout))


def uncovered(files: frozenset[str], deps: list[str]) -> list[str]:
    """The files that are neither a dep nor inside a dep folder."""
    return sorted(f for f in files if not any(f == dep or f.startswith(dep.rstrip("/") + "/") for dep in deps))


def stage_command(stage: dict) -> tuple[str, list[str]]:
    body = stage.get("do", stage)
    return body["cmd"].split()[1], body["deps"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_imported_module_is_a_dep_of_the_stage(name):
    subcommand, deps = stage_command(STAGES[name])
    missing = uncovered(imported_files(subcommand), deps)
    assert not missing, f"stage {name} imports {missing} but does not list them in its deps"


def test_a_stage_missing_a_folder_it_imports_is_caught():
    subcommand, deps = stage_command(STAGES["evaluate_e1"])
    without_core = [dep for dep in deps if dep != "src/deceptionlab/core"]
    assert len(without_core) == len(deps) - 1
    missing = uncovered(imported_files(subcommand), without_core)
    assert "src/deceptionlab/core/params.py" in missing and "src/deceptionlab/core/stats.py" in missing


def test_every_stage_depends_on_the_cli_that_runs_it():
    for name, stage in STAGES.items():
        assert "src/deceptionlab/cli.py" in stage_command(stage)[1], name
