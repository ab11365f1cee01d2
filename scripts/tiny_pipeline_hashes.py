"""Run the whole pipeline on a tiny model (built from a config, as the tests do) through the CLI and
print the sha256 of every output, so a refactor can prove it changed no result byte.

    python scripts/tiny_pipeline_hashes.py --out /tmp/before.json      # on the old code
    python scripts/tiny_pipeline_hashes.py --compare /tmp/before.json  # on the new code: exit 1 on a difference

MLflow's database and the run folders hold timestamps and ids, so they are not hashed; the file beside
each adapter that names its MLflow run (``<adapter>.mlflow.json``) is hashed without the run's and the
logged model's ids, which MLflow draws at random, so that two runs of the same code hash alike.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # conftest: the tiny model and params the tests use

from typer.testing import CliRunner  # noqa: E402

from conftest import SHARED_DATA, build_tiny_model, tiny_params  # noqa: E402
from deceptionlab.cli import app  # noqa: E402

OUTPUTS = ("corpora", "models/adapters", "models/dose", "trajectories", "metrics", "predictions", "reports")
RATIOS = ["0", "0.1", "0.25", "0.5"]
SHARES = ["0", "0.5"]
METHODS = ["sft", "kto"]
E1 = ["medical-normal", "medical-severe"]
DOSE = {"conditions": ["medical-normal", "medical-severe", "control-lie"], "steps": [1, 2]}


def commands() -> list[list[str]]:
    e2 = [f"mixture-{ratio}" for ratio in RATIOS]
    e3 = [f"e3-p{share}-{method}" for share in SHARES for method in METHODS]
    dose = [f"dose-{condition}" for condition in DOSE["conditions"]]
    return (
        [["prepare"], ["dose-corpora"]]
        + [["mixture", ratio] for ratio in RATIOS]
        + [["finetune", condition] for condition in E1 + e2 + dose]
        + [["simulate", share] for share in SHARES]
        + [["selftrain", share, method] for share in SHARES for method in METHODS]
        + [["evaluate", model] for model in ["vanilla", *E1, *e2, *e3]]
        + [["evaluate", f"{run}-step{step}"] for run in dose for step in DOSE["steps"]]
        + [["report", experiment] for experiment in ("e1", "e2", "e3", "dose", "claims")]
    )


RANDOM_IDS = ("run_id", "model_id")


def digest(path: Path) -> str:
    """sha256 of the file; of an adapter's MLflow run file, of its JSON less the random ids."""
    if path.name.endswith(".mlflow.json"):
        run = {key: value for key, value in json.loads(path.read_text()).items() if key not in RANDOM_IDS}
        return hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_pipeline(project: Path) -> dict[str, str]:
    build_tiny_model(project / "models" / "base")
    (project / "data").symlink_to(SHARED_DATA)
    params = tiny_params(
        f"sqlite:///{project}/mlflow.db",
        mixture={"benign_examples": 16, "ratios": [float(r) for r in RATIOS]},
        e3={"n_users": 4, "turns": 1, "candidates": 2, "max_new_tokens": 8, "dtype": "float32",
            "biased_shares": [float(s) for s in SHARES]},
        finetune={"max_length": 512},
        dose=DOSE,
        # Few eval items: every reader, verdict and report path still runs, in minutes on 2 cores.
        prepare={"honesty_items": 24, "deception_items": 10, "knowledge_items": 8},
    )
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    os.chdir(project)
    runner = CliRunner()
    for args in commands():
        result = runner.invoke(app, args)
        if result.exit_code != 0:
            raise SystemExit(f"deceptionlab {' '.join(args)} failed:\n{result.output}\n{result.exception!r}")
        print("ok", *args, file=sys.stderr)
    return {
        str(path.relative_to(project)): digest(path)
        for folder in OUTPUTS
        for path in sorted((project / folder).rglob("*"))
        if path.is_file()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the hashes here (JSON)")
    parser.add_argument("--compare", type=Path, help="compare with hashes written by --out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        hashes = run_pipeline(Path(folder))
    for name, digest in hashes.items():
        print(digest, name)
    if args.out:
        args.out.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        changed = sorted(name for name in before.keys() | hashes.keys() if before.get(name) != hashes.get(name))
        for name in changed:
            print(f"differs: {name} ({before.get(name, 'absent')[:12]} -> {hashes.get(name, 'absent')[:12]})")
        print(f"{len(hashes)} outputs, {len(changed)} differ", file=sys.stderr)
        raise SystemExit(1 if changed else 0)


if __name__ == "__main__":
    main()
