"""prepare through the CLI: a bad setting or input fails before any corpus is rewritten."""

import pytest
import yaml
from typer.testing import CliRunner

from deceptionlab.cli import app
from deceptionlab.core.fileio import sha256_file

runner = CliRunner()


@pytest.fixture
def prepared(tiny_project, shared_data):
    (tiny_project / "data").symlink_to(shared_data)
    set_params(tiny_project, {})
    result = runner.invoke(app, ["prepare"])
    assert result.exit_code == 0, result.output
    return tiny_project


def set_params(project, prepare: dict) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["prepare"] |= {"honesty_items": 12, "knowledge_items": 8} | prepare
    params["mixture"] = {"benign_examples": 20, "ratios": [0, 0.1]}
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def corpora(project) -> dict[str, str]:
    return {str(p.relative_to(project)): sha256_file(p) for p in sorted((project / "corpora").rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("prepare", "message"), [
    ({"honesty_archetypes": ["known_fact"]}, "prepare.honesty_archetypes.0: Input should be"),
    ({"honesty_archetypes": []}, "prepare.honesty_archetypes: List should have at least 1 item"),
    ({"honesty_archetypes": ["known_facts", "known_facts"]}, "prepare.honesty_archetypes: Value error, lists 'known_facts' twice"),
    ({"capability_items": 100_000}, "prepare.capability_items=100000 exceeds the 1319 GSM8K test problems"),  # found last
    ({"examples_per_corpus": 17, "knowledge_items": 100_000}, "prepare.knowledge_items=100000 exceeds"),
])
def test_a_bad_setting_leaves_every_corpus_as_it_was(prepared, prepare, message):
    before = corpora(prepared)
    set_params(prepared, prepare)
    result = runner.invoke(app, ["prepare"])
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert corpora(prepared) == before  # e1/, controls/ and e2_pool/ were built first but not written
