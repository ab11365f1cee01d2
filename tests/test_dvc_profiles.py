"""Every shipped profile drives every pipeline: `cp params/<profile>.yaml params.yaml && dvc repro` (or
`make dose`, `make seeds`, `make sweeps`) must not stop at DVC's parse of a section the profile leaves
out, since DVC reads params.yaml's YAML as written, not the defaults the pydantic params fill in."""

from pathlib import Path

import pytest
import yaml

from conftest import dvc_index
from deceptionlab.core.params import load_params

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ("dose/dvc.yaml", "seeds/dvc.yaml", "sweeps/dvc.yaml")
PROFILES = ["params.yaml", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "params").glob("*.yaml"))]


@pytest.mark.parametrize("profile", PROFILES)
def test_dvc_parses_every_pipeline_under_the_profile(tmp_path: Path, profile: str) -> None:
    stages, _, _ = dvc_index(tmp_path, PIPELINES, profile)
    for pipeline in PIPELINES:
        assert any(address.startswith(f"{pipeline}:") for address in stages), (profile, pipeline)
    params = load_params(ROOT / profile)
    assert {f"seeds/dvc.yaml:finetune_seeds_e1@{condition}-{seed}" for condition in params.seeds.e1
            for seed in params.seeds.extra} <= set(stages)
    assert {f"sweeps/dvc.yaml:sweep@{name}" for name in params.sweep.studies} <= set(stages)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_profile_writes_out_every_setting_the_pipelines_read(profile: str) -> None:
    """What DVC interpolates is what the code runs: no section DVC reads is left to a pydantic default."""
    written = yaml.safe_load((ROOT / profile).read_text())
    params = load_params(ROOT / profile)
    for section in ("dose", "seeds"):
        assert written[section] == params.model_dump()[section], (profile, section)
    assert set(written["sweep"]["studies"]) == set(params.sweep.studies), profile
