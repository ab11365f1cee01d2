"""atomic_file_set: a stage's files land together or not at all; a refused write is a one-line DataError."""

from pathlib import Path

import pytest

from deceptionlab.core.errors import DataError
from deceptionlab.core.fileio import (
    atomic_directory,
    atomic_file_set,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    commit_file_set,
)


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_set_lands_whole_when_the_block_succeeds(tmp_path):
    atomic_write_text(tmp_path / "a.md", "old a")
    with atomic_file_set():
        atomic_write_text(tmp_path / "a.md", "new a")
        atomic_write_bytes(tmp_path / "b.png", b"new b")
        atomic_write_json(tmp_path / "c.json", {"c": 1})
        atomic_write_text(tmp_path / "a.md", "newer a")  # written twice: the last one counts
        assert (tmp_path / "a.md").read_text() == "old a" and not (tmp_path / "b.png").exists()
    assert listing(tmp_path) == {"a.md": b"newer a", "b.png": b"new b", "c.json": b'{\n  "c": 1\n}\n'}


def test_a_failed_block_leaves_the_previous_files_and_no_temporary_ones(tmp_path):
    atomic_write_text(tmp_path / "a.md", "old a")
    with pytest.raises(RuntimeError), atomic_file_set():
        atomic_write_text(tmp_path / "a.md", "new a")
        atomic_write_text(tmp_path / "b.csv", "new b")
        raise RuntimeError("the report failed half-way")
    assert listing(tmp_path) == {"a.md": b"old a"}


def test_commit_puts_the_set_in_place_early_and_nested_sets_join(tmp_path):
    with atomic_file_set():
        with atomic_file_set():
            atomic_write_text(tmp_path / "a.md", "a")
        assert not (tmp_path / "a.md").exists()  # the inner set is part of the outer one
        commit_file_set()
        assert (tmp_path / "a.md").read_text() == "a"
    commit_file_set()  # outside a set: nothing to do


@pytest.mark.parametrize("write", [
    lambda path: atomic_write_text(path, "x"),
    lambda path: atomic_write_json(path, {}),
    lambda path: atomic_directory(path).__enter__(),
])
def test_a_parent_that_is_a_file_is_a_one_line_data_error(tmp_path, write):
    (tmp_path / "metrics").write_text("a file")
    with pytest.raises(DataError, match=r"metrics/e1/out\.json: cannot write it \(") as raised:
        write(tmp_path / "metrics" / "e1" / "out.json")
    assert "\n" not in str(raised.value)
