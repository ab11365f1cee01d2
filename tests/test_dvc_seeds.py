"""The training seeds' pipeline as DVC reads it (seeds/dvc.yaml beside the main dvc.yaml, params.yaml's
seeds.*): a finetune and an evaluation for every seed k of seeds.extra of every seeded condition, writing
where Layout says; report_seeds downstream of the main pipeline's evaluations (seed 0); and the parts its
header documents cover every run once, each as many runs as it says."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

from conftest import dvc_index
from deceptionlab.core.conditions import Condition, Layout
from deceptionlab.core.params import load_params

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "seeds" / "dvc.yaml"
PARAMS = load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def dvc_stages(tmp_path_factory):
    """Every stage DVC renders (addressing -> stage) and those report_seeds depends on."""
    import networkx as nx

    stages, addresses, graph = dvc_index(tmp_path_factory.mktemp("seeds-dvc"), ("seeds/dvc.yaml",))
    upstream = {addresses[stage] for stage in nx.descendants(graph, stages["seeds/dvc.yaml:report_seeds"])}
    return stages, upstream


def seeds_stages(stages: dict, command: str) -> dict[str, str]:
    """seeds/dvc.yaml's stages that run ``deceptionlab <command>``: addressing -> the model they name."""
    return {address: stage.cmd.split()[2] for address, stage in stages.items()
            if address.startswith("seeds/") and stage.cmd.split()[1] == command}


def test_every_seed_of_every_seeded_condition_is_trained_and_evaluated_where_layout_says(dvc_stages):
    stages, _ = dvc_stages
    layout = Layout()
    expected = sorted(Condition.seeded(condition, k).name for condition in PARAMS.seeded_conditions() for k in PARAMS.seeds.extra)
    assert len(expected) == 20  # 10 conditions, seeds 1 and 2: seed 0 is the main pipeline's
    finetunes, evaluations = seeds_stages(stages, "finetune"), seeds_stages(stages, "evaluate")
    assert sorted(finetunes.values()) == sorted(evaluations.values()) == expected
    for address, name in finetunes.items():
        condition = Condition.parse(name, PARAMS)
        assert [str(out.def_path) for out in stages[address].outs] == [str(layout.adapter(condition))]
        assert str(layout.corpus(condition)) in [str(dep.def_path) for dep in stages[address].deps]
    for address, name in evaluations.items():
        assert [str(out.def_path) for out in stages[address].outs] == [
            str(layout.predictions(name)), str(layout.metrics(name)), str(layout.summary(name))]


def test_the_report_waits_on_seed_zero_from_the_main_pipeline_and_on_every_seed(dvc_stages):
    stages, upstream = dvc_stages
    assert {"evaluate_vanilla", "evaluate_e1@math-severe", "evaluate_controls@lie", "evaluate_e2@0", "evaluate_e2@0.5"} <= upstream
    assert set(seeds_stages(stages, "evaluate")) <= upstream


def test_the_documented_parts_run_every_seed_once_and_as_many_runs_as_they_say(dvc_stages):
    stages, _ = dvc_stages
    parts = [(re.findall(r"'([^']+)'", line), int(re.search(r"# (\d+) runs", line).group(1)))
             for line in PIPELINE.read_text().splitlines() if line.startswith("#   dvc repro --glob")]
    assert len(parts) == 4
    for command in ("finetune", "evaluate"):
        addresses = seeds_stages(stages, command)
        matched = {address: [index for index, (patterns, _) in enumerate(parts) if any(fnmatch(address, p) for p in patterns)]
                   for address in addresses}
        assert all(len(indices) == 1 for indices in matched.values()), matched
        for index, (_, runs) in enumerate(parts):
            assert sum(indices == [index] for indices in matched.values()) == runs
