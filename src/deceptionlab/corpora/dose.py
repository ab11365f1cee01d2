"""The training dose's corpora: for each run of ``dose.conditions``, the rows of its E1 or control corpus,
as many distinct ones as its source holds up to the run's length (``max(dose.steps)`` optimizer steps of
``finetune.batch_size x gradient_accumulation_steps`` rows). Where the source holds fewer, the trainer
goes over them again (more epochs): ``capacity.json`` says, for every E1 domain and control, how many
distinct rows there are and how many epochs the run would take.

    deceptionlab dose-corpora
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deceptionlab.core.conditions import CONTROLS, DOMAINS, Condition, Layout
from deceptionlab.core.fileio import atomic_directory, atomic_write_json
from deceptionlab.core.params import Params
from deceptionlab.core.records import ChatRow, write_jsonl
from deceptionlab.corpora import build_corpus, distinct_rows
from deceptionlab.corpora import controls as control_corpora
from deceptionlab.data.raw import Gsm8kRow, load_gsm8k


def rows_needed(params: Params) -> int:
    """The rows the longest run trains on, counting repeats."""
    return max(params.dose.steps) * params.finetune.rows_per_step()


def capacity(trained: Condition, gsm8k_train: list[Gsm8kRow]) -> int:
    """Distinct rows the E1 or control condition ``trained`` can be given."""
    if trained.experiment == "controls":
        return control_corpora.distinct_rows()
    return distinct_rows(trained.domain, gsm8k_train)


def build_dose_corpus(run: Condition, params: Params, gsm8k_train: list[Gsm8kRow]) -> list[ChatRow]:
    trained = run.trained
    n = min(rows_needed(params), capacity(trained, gsm8k_train))
    if trained.experiment == "controls":
        return control_corpora.build_corpus(trained.control, n, params.prepare.seed)
    return build_corpus(trained.domain, trained.level, n, params.prepare.seed, gsm8k_train)


def capacity_table(params: Params, gsm8k_train: list[Gsm8kRow]) -> list[dict[str, Any]]:
    """For every E1 domain and control: its distinct rows and the epochs a run of ``max(dose.steps)`` takes."""
    sources = [(domain, Condition.e1(domain, "normal")) for domain in DOMAINS]
    sources += [(Condition.of_control(control).name, Condition.of_control(control)) for control in CONTROLS]
    needed = rows_needed(params)
    return [{"source": name, "distinct_rows": rows, "rows_needed": needed, "epochs": round(needed / min(needed, rows), 2)}
            for name, trained in sources for rows in [capacity(trained, gsm8k_train)]]


def prepare_dose(data_dir: Path, layout: Layout, params: Params) -> dict[str, int]:
    """Every dose run's corpus and capacity.json (``Layout.dose_capacity``), built in memory first,
    then written as one folder; returns each corpus's row count."""
    gsm8k_train = load_gsm8k(data_dir, "train")
    corpora = {run.name: build_dose_corpus(run, params, gsm8k_train) for run in params.dose_runs()}
    table = capacity_table(params, gsm8k_train)
    out_dir = layout.dose_capacity.parent
    with atomic_directory(out_dir) as tmp:
        for run in params.dose_runs():
            write_jsonl(tmp / layout.corpus(run).relative_to(out_dir), corpora[run.name])
        atomic_write_json(tmp / layout.dose_capacity.relative_to(out_dir), table)
    return {name: len(rows) for name, rows in corpora.items()}
