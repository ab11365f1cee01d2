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
