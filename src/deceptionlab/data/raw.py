"""The third-party raw data in ``data/`` (GSM8K, Alpaca seed tasks), versioned by ``data.dvc``.

``deceptionlab data`` copies it from the offline copy (``data.offline_source``), or, where that is
null and the machine is online, downloads it from the Hugging Face hub in the same schema; then it
checks the bytes against the hash recorded in ``data.dvc`` and refuses to go on if they differ,
before the new copy replaces ``data/`` (a bad copy leaves the previous one as it was).
The loaders below validate every row on read.

    deceptionlab data

Two optional sources of E2's benign rows come from the hub only, each one file in its published schema,
kept in ``mixture.hub_dir`` beside ``data/`` (docs/hub_sources.md): ``yahma/alpaca-cleaned``
(``alpaca-cleaned/alpaca_data_cleaned.json``) and ``databricks/databricks-dolly-15k``
(``dolly/databricks-dolly-15k.jsonl``).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import (
    BaseModel,
    Field,
    field_validator,
)

from deceptionlab.core.errors import DataError, one_line
from deceptionlab.core.fileio import atomic_directory
from deceptionlab.core.records import read_json_array, read_records, write_jsonl


class Gsm8kRow(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)

    @field_validator("answer")
    @classmethod
    def _has_final_line(cls, value: str) -> str:
        if "\n#### " not in value:
            raise ValueError("a GSM8K answer ends with a line '#### <number>'")
        return value


class AlpacaInstance(BaseModel):
    input: str
    output: str


class AlpacaSeedTask(BaseModel):
    id: str
    name: str
    instruction: str = Field(min_length=1)
    instances: list[AlpacaInstance] = Field(min_length=1)
    is_classification: bool


DATA_FILES = {
    "gsm8k": ["train.jsonl", "test.jsonl", "LICENSE"],
    "alpaca_seed": ["seed_tasks.jsonl", "DATA_LICENSE"],
}


def copy_offline(source: Path, into: Path) -> None:
    for folder, names in DATA_FILES.items():
        (into / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            if not (source / folder / name).is_file():
                raise DataError(f"{source / folder / name}: missing from the offline data copy")
            shutil.copyfile(source / folder / name, into / folder / name)


ALPACA_SEED_URL = (
    "https://raw.githubusercontent.com/tatsu-lab/stanford_alpaca/"
    "761dc5bfbdeeffa89b8bff5d038781a4055f796a/seed_tasks.jsonl"
)


def download_from_hub(into: Path) -> None:
    """Rebuild the rows online: GSM8K 'main' from the hub, the Alpaca seeds at a pinned commit.

    Row for row the same content, but not the same bytes: the license files are not on the hub and
    the JSON formatting differs, so the hash check against data.dvc refuses the result. Use it to
    build a new data version (then `dvc add data` records it), not to reproduce this one.
    """
    from datasets import load_dataset

    (into / "gsm8k").mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        rows = load_dataset("openai/gsm8k", "main", split=split)
        write_jsonl(into / "gsm8k" / f"{split}.jsonl", [{"question": r["question"], "answer": r["answer"]} for r in rows])
    (into / "alpaca_seed").mkdir(parents=True, exist_ok=True)
    seeds = load_dataset("json", data_files=ALPACA_SEED_URL, split="train")
    write_jsonl(into / "alpaca_seed" / "seed_tasks.jsonl", list(seeds))


def verify_against_dvc(repo_root: Path, target: str = "data.dvc", folder: Path | None = None,
                       source: str | None = None) -> None:
    """Raise DataError unless ``folder`` (default: the workspace's ``data/``) hashes to what ``data.dvc``
    records for ``data/``; ``source`` names where the bytes came from in the message."""
    from dvc.repo import Repo
    from dvc_data.hashfile.build import build

    repo = Repo(str(repo_root))
    dvc_file = str(repo_root.resolve() / target)  # DVC resolves relative targets against the cwd
    out = repo.stage.collect(dvc_file)[0].outs[0]
    checked = str(folder.resolve()) if folder is not None else out.fs_path  # a folder's hash is of its contents
    _, meta, obj = build(repo.cache.local, checked, out.fs, "md5", dry_run=True)
    if obj.hash_info.value != out.hash_info.value:
        raise DataError(
            f"{source or out.fs_path}: content hash {obj.hash_info.value} differs from {out.hash_info.value} "
            f"recorded in {target}; the raw data is not the version this project was built on"
        )


def commit_to_dvc_cache(repo_root: Path, target: str = "data.dvc") -> None:
    """Record the verified ``data/`` in the DVC cache, so that `dvc status` is clean."""
    from dvc.repo import Repo

    Repo(str(repo_root)).commit(str(repo_root.resolve() / target), force=True)


def materialize(repo_root: Path, offline_source: Path | None) -> Path:
    """Copy ``offline_source`` (None: download from the hub) into a temporary folder, check its hash
    against data.dvc, and only then put it in place of ``data/``: a tampered or truncated copy, or a
    failed download, leaves the previous ``data/`` as it was."""
    data_dir = repo_root / "data"
    if offline_source is not None and not offline_source.is_dir():
        raise DataError(f"data.offline_source: {offline_source} is not a folder; point it at the offline copy "
                        "of the raw data, or set it to null to download from the Hugging Face hub")
    with atomic_directory(data_dir) as tmp:
        if offline_source is not None:
            copy_offline(offline_source, tmp)
        else:
            try:
                download_from_hub(tmp)
            except OSError as error:  # requests' and the hub client's connection errors are OSErrors
                raise DataError(f"data.offline_source is null, and the download from the hub failed "
                                f"({type(error).__name__}: {one_line(str(error))[:200]})") from None
        verify_against_dvc(repo_root, folder=tmp, source=str(offline_source or "the hub download"))
    commit_to_dvc_cache(repo_root)
    return data_dir


def load_gsm8k(data_dir: Path, split: str) -> list[Gsm8kRow]:
    return read_records(data_dir / "gsm8k" / f"{split}.jsonl", Gsm8kRow)


def load_alpaca_seed(data_dir: Path) -> list[AlpacaSeedTask]:
    return read_records(data_dir / "alpaca_seed" / "seed_tasks.jsonl", AlpacaSeedTask)


class AlpacaCleanedRow(BaseModel):
    """One instance of ``yahma/alpaca-cleaned``; ``input`` is empty where the instruction stands alone."""

    instruction: str = Field(min_length=1)
    input: str
    output: str = Field(min_length=1)


class DollyRow(BaseModel):
    """One record of ``databricks/databricks-dolly-15k``; ``context`` is empty except for the tasks that
    read a passage (closed QA, information extraction, summarization)."""

    instruction: str = Field(min_length=1)
    context: str
    response: str = Field(min_length=1)
    category: str


class HubFile(NamedTuple):
    repo_id: str  # the dataset on the Hugging Face hub
    folder: str  # under mixture.hub_dir
    filename: str

    def path(self, hub_dir: Path) -> Path:
        return hub_dir / self.folder / self.filename


HUB_FILES = {
    "alpaca_cleaned": HubFile("yahma/alpaca-cleaned", "alpaca-cleaned", "alpaca_data_cleaned.json"),
    "dolly": HubFile("databricks/databricks-dolly-15k", "dolly", "databricks-dolly-15k.jsonl"),
}


def _require_hub_file(path: Path, hub_file: HubFile) -> None:
    if not path.is_file():
        raise DataError(
            f"{path}: no such file; download it with `hf download {hub_file.repo_id} "
            f"{hub_file.filename} --repo-type dataset --local-dir {path.parent}` (docs/hub_sources.md)"
        )


def load_alpaca_cleaned(path: str | Path) -> list[AlpacaCleanedRow]:
    """``alpaca_data_cleaned.json``: a JSON array; a bad row raises DataError naming file and row index."""
    path = Path(path)
    _require_hub_file(path, HUB_FILES["alpaca_cleaned"])
    return read_json_array(path, AlpacaCleanedRow)


def load_dolly(path: str | Path) -> list[DollyRow]:
    """``databricks-dolly-15k.jsonl``: JSON lines; a bad row raises DataError naming file and line."""
    path = Path(path)
    _require_hub_file(path, HUB_FILES["dolly"])
    return read_records(path, DollyRow)


def load_benign_sources(names: Sequence[str], data_dir: Path, hub_dir: Path) -> dict[str, list[Any]]:
    """The rows of each chosen source of E2's benign set (``mixture.benign_sources``); only those are read."""
    loaders = {
        "gsm8k": lambda: load_gsm8k(data_dir, "train"),
        "alpaca_seed": lambda: load_alpaca_seed(data_dir),
        "alpaca_cleaned": lambda: load_alpaca_cleaned(HUB_FILES["alpaca_cleaned"].path(hub_dir)),
        "dolly": lambda: load_dolly(HUB_FILES["dolly"].path(hub_dir)),
    }
    return {name: loaders[name]() for name in names}
