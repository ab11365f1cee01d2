"""The CLI with hostile or careless arguments: one line, exit 1, nothing written where it should not be."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import chat_rows
from deceptionlab.cli import app
from deceptionlab.core.records import write_jsonl

runner = CliRunner()


def assert_one_line_error(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["mixture", "1e-1"], "condition 'mixture-1e-1': write it 'mixture-0.1'"),
    (["mixture", "0.10"], "condition 'mixture-0.10': write it 'mixture-0.1'"),
    (["mixture", "0.0_5"], "condition 'mixture-0.0_5': write it 'mixture-0.05'"),
    (["mixture", "０.１"], "write it 'mixture-0.1'"),
    (["mixture", "0.1\n"], "write it 'mixture-0.1'"),
    (["finetune", "mixture-1e-1"], "condition 'mixture-1e-1': write it 'mixture-0.1'"),
    (["simulate", "0.10"], "biased share '0.10': write it '0.1'"),
    (["simulate", "1e-1"], "biased share '1e-1': write it '0.1'"),
    (["selftrain", "0.50", "kto"], "biased share '0.50': write it '0.5'"),
    (["evaluate", "e3-p0.10-kto"], "condition 'e3-p0.10-kto': write it 'e3-p0.1-kto'"),
])
def test_every_share_has_one_spelling(tiny_project, args, message):
    assert_one_line_error(runner.invoke(app, args), message)
    assert not Path("corpora").exists() and not Path("trajectories").exists()


@pytest.mark.parametrize("name", ["[/x]", "[bold]medical[/bold]-severe", "medical-[/]"])
def test_markup_in_a_name_is_printed_as_written(tiny_project, name):
    assert_one_line_error(runner.invoke(app, ["finetune", name]), f"condition {name!r}")


def test_an_output_whose_parent_is_a_file_is_a_one_line_error(tiny_project):
    write_jsonl("corpora/e2_pool/benign.jsonl", chat_rows(10))
    write_jsonl("corpora/e2_pool/misaligned.jsonl", chat_rows(5))
    Path("corpora/e2").write_text("a file where the folder must be")
    assert_one_line_error(runner.invoke(app, ["mixture", "0"]), "corpora/e2/mixture-0.jsonl: cannot write it")


@pytest.mark.parametrize(("empty", "ratio"), [("benign", "0"), ("misaligned", "0.1")])
def test_an_empty_pool_writes_no_mixture(tiny_project, empty, ratio):
    write_jsonl("corpora/e2_pool/benign.jsonl", chat_rows(10) if empty != "benign" else [])
    write_jsonl("corpora/e2_pool/misaligned.jsonl", chat_rows(5) if empty != "misaligned" else [])
    assert_one_line_error(runner.invoke(app, ["mixture", ratio]), f"corpora/e2_pool/{empty}.jsonl: no rows")
    assert not Path(f"corpora/e2/mixture-{ratio}.jsonl").exists()
