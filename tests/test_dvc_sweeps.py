"""The named studies' pipeline as DVC reads it (sweeps/dvc.yaml, params.yaml's sweep.studies): one stage a
study, running it by name, downstream of the main pipeline's model and corpora, its trial table, fit and
figures plain outputs that a rerun keeps (persist), so that the study resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import dvc_index
from deceptionlab.core.params import load_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def sweep_stages(tmp_path_factory):
    """sweeps/dvc.yaml's stages (addressing -> stage) and, for each, the addresses of the stages it depends on."""
    stages, addresses, graph = dvc_index(tmp_path_factory.mktemp("sweeps-dvc"), ("sweeps/dvc.yaml",))
    return {address: (stage, {addresses[up] for up in graph.successors(stage)})
            for address, stage in stages.items() if address.startswith("sweeps/")}


def test_each_named_study_is_a_stage_that_runs_it_after_the_model_and_corpora_exist(sweep_stages):
    assert PARAMS.sweep.studies, "params.yaml names no study"
    assert sorted(sweep_stages) == sorted(f"sweeps/dvc.yaml:sweep@{name}" for name in PARAMS.sweep.studies)
    for name in PARAMS.sweep.studies:
        stage, upstream = sweep_stages[f"sweeps/dvc.yaml:sweep@{name}"]
        assert stage.cmd == f"deceptionlab sweep --study {name}"  # its trial count from params
        assert upstream == {"base_model", "prepare"}


def test_a_studys_table_fit_and_figures_are_in_git_and_survive_a_rerun(sweep_stages):
    for name in PARAMS.sweep.studies:
        stage, _ = sweep_stages[f"sweeps/dvc.yaml:sweep@{name}"]
        outs = {str(Path(out.fs_path).relative_to(Path(stage.path).parents[1])): out for out in stage.outs}
        assert sorted(outs) == [f"sweeps/{name}/{file}" for file in ("dose_response.json", "figures", "trials.csv")]
        assert all(not out.use_cache and out.persist for out in outs.values())
