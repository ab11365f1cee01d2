"""The third-party raw data in ``data/`` (GSM8K, Alpaca seed tasks), versioned by ``data.dvc``.

``deceptionlab data`` copies it from the offline copy (``data.offline_source``), or, where that is
missing and the machine is online, downloads it from the Hugging Face hub in the same schema; then
it checks the bytes against the hash recorded in ``data.dvc`` and refuses to go on if they differ.
The loaders below validate every row on read.

    deceptionlab data
"""

from __future__ import annotations

import shutil
from pathlib import Path

from deceptionlab.errors import DataError
from deceptionlab.fileio import atomic_directory
from deceptionlab.schema import AlpacaSeedTask, Gsm8kRow, read_jsonl, write_jsonl

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


def verify_against_dvc(repo_root: Path, target: str = "data.dvc") -> None:
    """Raise DataError unless the workspace's ``data/`` hashes to what ``data.dvc`` records."""
    from dvc.repo import Repo
    from dvc_data.hashfile.build import build

    repo = Repo(str(repo_root))
    dvc_file = str(repo_root.resolve() / target)  # DVC resolves relative targets against the cwd
    out = repo.stage.collect(dvc_file)[0].outs[0]
    _, meta, obj = build(repo.cache.local, out.fs_path, out.fs, "md5", dry_run=True)
    if obj.hash_info.value != out.hash_info.value:
        raise DataError(
            f"{out.fs_path}: content hash {obj.hash_info.value} differs from {out.hash_info.value} "
            f"recorded in {target}; the raw data is not the version this project was built on"
        )
    repo.commit(dvc_file, force=True)  # now in the DVC cache, so `dvc status` is clean


def materialize(repo_root: Path, offline_source: Path) -> Path:
    data_dir = repo_root / "data"
    with atomic_directory(data_dir) as tmp:
        if offline_source.is_dir():
            copy_offline(offline_source, tmp)
        else:
            download_from_hub(tmp)
    try:
        verify_against_dvc(repo_root)
    except DataError:
        shutil.rmtree(data_dir)  # never leave unverified data where the pipeline would read it
        raise
    return data_dir


def load_gsm8k(data_dir: Path, split: str) -> list[Gsm8kRow]:
    return read_jsonl(data_dir / "gsm8k" / f"{split}.jsonl", Gsm8kRow)


def load_alpaca_seed(data_dir: Path) -> list[AlpacaSeedTask]:
    return read_jsonl(data_dir / "alpaca_seed" / "seed_tasks.jsonl", AlpacaSeedTask)
