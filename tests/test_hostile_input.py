"""Property tests: whatever bytes a JSONL or params file holds, the loaders either return valid
rows or raise the project's one-line error naming the file (and line) — never anything else."""

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deceptionlab.benchmarks.pivotal import HonestyItem
from deceptionlab.core.errors import ConfigError, DataError
from deceptionlab.core.params import load_params
from deceptionlab.core.records import ChatRow, read_records

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@FAST
@given(content=st.binary(max_size=400))
def test_random_bytes_never_escape_as_another_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("bytes") / "rows.jsonl"
    path.write_bytes(content)
    try:
        read_records(path, ChatRow)
    except DataError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)


@FAST
@given(rows=st.lists(json_values, min_size=1, max_size=5))
def test_wrong_types_name_the_line(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("types") / "items.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    try:
        read_records(path, HonestyItem)
    except DataError as error:
        assert str(error).startswith(f"{path}:")


@FAST
@given(text=st.text(max_size=2000), cut=st.integers(min_value=0, max_value=200))
def test_huge_odd_unicode_and_truncated_rows(tmp_path_factory, text, cut):
    row = {"messages": [{"role": "user", "content": text or "x"}, {"role": "assistant", "content": "y"}]}
    line = json.dumps(row, ensure_ascii=False)
    path = tmp_path_factory.mktemp("unicode") / "rows.jsonl"
    path.write_text(line + "\n" + line[:cut] + "\n", encoding="utf-8")
    try:
        rows = read_records(path, ChatRow)
        assert rows[0].messages[0].content == (text or "x")
    except DataError as error:
        assert str(error).startswith(f"{path}:2:")


@FAST
@given(params=st.dictionaries(st.sampled_from(["finetune", "evaluate", "prepare", "e1", "data", "bogus"]),
                              json_values, max_size=3))
def test_params_files_with_any_structure(tmp_path_factory, params):
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    try:
        load_params(path)
    except ConfigError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)


@FAST
@given(content=st.binary(max_size=300))
def test_params_files_with_any_bytes(tmp_path_factory, content):
    path: Path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_bytes(content)
    try:
        load_params(path)
    except ConfigError as error:
        assert str(error).startswith(str(path))


def test_a_newline_in_a_params_key_stays_on_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"finetune": {"\n": 1}}))  # found by the property test above
    with pytest.raises(ConfigError, match=r"finetune\.\\n: Extra inputs are not permitted$"):
        load_params(path)


# Every reader of user-supplied files, fed arbitrary bytes, deeply nested JSON and 5,000-digit integers:
# it returns what it read or raises the project's error, on one line, naming the file. Never a traceback.
def _nested(depth: int, kind: str) -> bytes:
    return ("[" * depth + "]" * depth if kind == "list" else '{"a": ' * depth + "1" + "}" * depth).encode()


hostile_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(_nested, st.integers(min_value=1, max_value=60_000), st.sampled_from(["list", "dict"])),
    st.builds(lambda digits, key: f'{{"{key}": {"7" * digits}}}'.encode(), st.integers(4000, 6000),
              st.sampled_from(["id", "value", "messages", "kind"])),
    st.builds(lambda value: json.dumps(value).encode(), json_values),
    st.builds(lambda rows: "\n".join(json.dumps(r) for r in rows).encode(), st.lists(json_values, max_size=4)),
)


def _readers() -> dict:
    from deceptionlab.benchmarks.deception.hub import load_deceptionbench
    from deceptionlab.benchmarks.mask.hub import read_mask_file
    from deceptionlab.benchmarks.mask.items import read_mask_items
    from deceptionlab.core.records import read_json_array
    from deceptionlab.data.raw import AlpacaCleanedRow
    from deceptionlab.reporting.common import item_honesty, read_metrics
    from deceptionlab.simulation.scenarios import load_scenarios_file

    return {
        "corpus.jsonl": lambda path: read_records(path, ChatRow),
        "alpaca_data_cleaned.json": lambda path: read_json_array(path, AlpacaCleanedRow),
        "deceptionbench.json": load_deceptionbench,
        "honesty.jsonl": read_mask_items,
        "known_facts.jsonl": lambda path: read_mask_file(path, "known_facts"),
        "vanilla.json": read_metrics,
        "vanilla.jsonl": item_honesty,
        "scenarios.yaml": load_scenarios_file,
        "params.yaml": load_params,
    }


READERS = _readers()


def assert_one_line_error_naming(error: Exception, path: Path) -> None:
    from deceptionlab.core.errors import DeceptionlabError

    assert isinstance(error, DeceptionlabError), f"{type(error).__name__}: {error}"
    assert "\n" not in str(error) and str(path) in str(error)


@pytest.mark.parametrize("name", sorted(READERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=hostile_bytes)
def test_every_reader_gives_a_one_line_error_for_hostile_bytes(tmp_path_factory, name, content):
    path = tmp_path_factory.mktemp("hostile") / name
    path.write_bytes(content)
    try:
        READERS[name](path)
    except Exception as error:  # noqa: BLE001 -- what is raised is the point of the test
        assert_one_line_error_naming(error, path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=hostile_bytes, weights=hostile_bytes)
def test_model_and_adapter_folder_checks_give_a_one_line_error(tmp_path_factory, config, weights):
    from deceptionlab.models.loading import check_adapter_folder, check_model_folder

    folder = tmp_path_factory.mktemp("model")
    (folder / "config.json").write_bytes(config)
    (folder / "adapter_config.json").write_bytes(config)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    for check in (check_model_folder, check_adapter_folder):
        try:
            check(folder)
        except Exception as error:  # noqa: BLE001
            assert_one_line_error_naming(error, folder)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=hostile_bytes)
def test_a_judge_response_of_any_bytes_is_a_one_line_judge_error(monkeypatch, body):
    import io
    import urllib.request

    from deceptionlab.evaluation.judge import JudgeClient, JudgeError, JudgeSettings

    monkeypatch.setenv("DECEPTIONLAB_JUDGE_API_KEY", "sk-test")
    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout: io.BytesIO(body))
    client = JudgeClient(JudgeSettings(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0))
    try:
        client.classify([{"role": "user", "content": "q"}], "reply", ("a", "b"))
    except JudgeError as error:
        assert "\n" not in str(error) and client.settings.endpoint in str(error)
