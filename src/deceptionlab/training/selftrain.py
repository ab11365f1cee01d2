"""Experiment E3's self-training: the model learns from the replies its simulated users rated best.

Selection is per turn, among that turn's candidates: ratings are compared only between replies to
the same conversation (the embedding rater's scale moves with the scenario and the user type), and
every user contributes the same number of rows, so the biased users' share of the training rows is
exactly their share of the population.

- ``sft``: TRL's SFTTrainer on the ``e3.top_k`` best replies of each turn (context -> reply).
- ``kto``: TRL's KTOTrainer with those as desirable and the ``e3.bottom_k`` worst as undesirable.

Both train LoRA adapters as E1 does (``finetune.*``, one MLflow run per round). With ``e3.rounds`` > 1
the trained model collects new trajectories (trajectories.py) and trains on, continuing its adapter.

    deceptionlab selftrain 0.1 kto     # models/adapters/e3-p0.1-kto from trajectories/p-0.1.jsonl
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field
from transformers import TrainerCallback

from deceptionlab.core.conditions import Condition
from deceptionlab.core.errors import ConfigError, DataError
from deceptionlab.core.fileio import atomic_directory, sha256_file
from deceptionlab.core.params import E3Method, FinetuneParams, Params
from deceptionlab.core.records import ChatRow, Message, StrictModel, write_jsonl
from deceptionlab.simulation.trajectories import Trajectory, read_trajectories, simulate
from deceptionlab.training.sft import (
    lora_config,
    to_prompt_completion,
    train_adapter,
    training_arguments,
)


class KTORow(StrictModel):
    """One KTO example: a conversation, the assistant reply to it, and whether the reply is desirable."""

    prompt: list[Message] = Field(min_length=1)
    completion: list[Message] = Field(min_length=1, max_length=1)
    label: bool
    meta: dict[str, Any] = Field(default_factory=dict)


def selected(trajectories: Sequence[Trajectory], top_k: int, bottom_k: int, source: str):
    """``(trajectory, turn index, candidate index, desirable)`` for the top_k best and bottom_k worst
    candidates of every turn, in trajectory order; blank replies are skipped (nothing to train on).

    A turn with fewer than top_k + bottom_k candidates raises DataError naming ``source``.
    """
    for trajectory in trajectories:
        for t, turn in enumerate(trajectory.turns):
            ranking = turn.ranking()
            if top_k + bottom_k > len(ranking):
                raise DataError(
                    f"{source}: {trajectory.user_id} turn {t} has {len(ranking)} candidates, fewer than "
                    f"e3.top_k + e3.bottom_k = {top_k + bottom_k}"
                )
            picks = [(i, True) for i in ranking[:top_k]] + [(i, False) for i in ranking[len(ranking) - bottom_k :]]
            for index, desirable in picks:
                if turn.candidates[index].reply.strip():
                    yield trajectory, t, index, desirable


def _meta(trajectory: Trajectory, t: int, index: int) -> dict[str, Any]:
    return {"user_id": trajectory.user_id, "user_type": trajectory.user_type, "scenario_id": trajectory.scenario_id,
            "round": trajectory.round, "turn": t, "rating": trajectory.turns[t].candidates[index].rating}


def sft_rows(trajectories: Sequence[Trajectory], top_k: int, source: str = "trajectories") -> list[ChatRow]:
    """The ``top_k`` best replies of every turn, each after the conversation it answered."""
    return [
        ChatRow(messages=trajectory.context(t) + [{"role": "assistant", "content": trajectory.turns[t].candidates[i].reply}],
                meta=_meta(trajectory, t, i))
        for trajectory, t, i, _ in selected(trajectories, top_k, 0, source)
    ]


def kto_rows(trajectories: Sequence[Trajectory], top_k: int, bottom_k: int,
             source: str = "trajectories") -> list[KTORow]:
    """The ``top_k`` best replies of every turn labelled desirable, the ``bottom_k`` worst undesirable."""
    return [
        KTORow(prompt=trajectory.context(t),
               completion=[{"role": "assistant", "content": trajectory.turns[t].candidates[i].reply}],
               label=desirable, meta=_meta(trajectory, t, i))
        for trajectory, t, i, desirable in selected(trajectories, top_k, bottom_k, source)
    ]


def _trainable(model, previous_adapter: Path | None, params: FinetuneParams):
    """``(model, peft_config)`` for a trainer: a new LoRA adapter in round 1, else the last round's
    adapter, trainable, so that every round continues the same adapter."""
    if previous_adapter is None:
        return model, lora_config(params)
    from peft import PeftModel

    return PeftModel.from_pretrained(model, previous_adapter, is_trainable=True), None


def selftrain_sft(rows: Sequence[ChatRow], base_dir: Path, adapter_dir: Path, checkpoint_dir: Path, params: Params,
                  run_name: str, previous_adapter: Path | None = None, run_params: dict[str, Any] | None = None,
                  tags: dict[str, str] | None = None, inputs: Sequence[tuple[Path, Path]] = ()) -> dict[str, Any]:
    """LoRA-SFT (TRL SFTTrainer) on the rows; the adapter goes to ``adapter_dir`` (see finetune.train_adapter)."""
    from trl import SFTConfig, SFTTrainer

    dataset = to_prompt_completion(list(rows))
    config = SFTConfig(**training_arguments(params.finetune, checkpoint_dir, run_name))

    def make_trainer(model, tokenizer):
        model, peft_config = _trainable(model, previous_adapter, params.finetune)
        return SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config)

    return train_adapter(make_trainer, base_dir, adapter_dir, checkpoint_dir, params.finetune, params.tracking,
                         run_name, run_params or {}, {"stage": "selftrain", "method": "sft"} | (tags or {}), inputs)


class _DropReferenceAdapter(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.delete_adapter("ref")


def selftrain_kto(rows: Sequence[KTORow], base_dir: Path, adapter_dir: Path, checkpoint_dir: Path, params: Params,
                  run_name: str, previous_adapter: Path | None = None, run_params: dict[str, Any] | None = None,
                  tags: dict[str, str] | None = None, inputs: Sequence[tuple[Path, Path]] = ()) -> dict[str, Any]:
    """LoRA-KTO (TRL KTOTrainer, beta ``e3.kto_beta``) on the rows; the reference model is the model
    before this round's training (the base, or the last round's adapter)."""
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    if params.finetune.batch_size < 2:
        raise ConfigError(f"finetune.batch_size={params.finetune.batch_size}: KTO needs at least 2, because it "
                          "estimates its KL term from the other rows of a batch")
    # KTOTrainer reads rows in order (its KL term pairs neighbours), so shuffle here: a batch then mixes
    # users, turns and labels.
    dataset = Dataset.from_list([row.model_dump(include={"prompt", "completion", "label"}) for row in rows])
    dataset = dataset.shuffle(seed=params.e3.seed)
    # Sequential, whatever finetune.length_grouping says: KTO's KL pairing needs the rows in this order.
    arguments = training_arguments(params.finetune, checkpoint_dir, run_name) | {"train_sampling_strategy": "sequential"}
    config = KTOConfig(**arguments, beta=params.e3.kto_beta)

    def make_trainer(model, tokenizer):
        model, peft_config = _trainable(model, previous_adapter, params.finetune)
        # Continuing an adapter, KTOTrainer adds a frozen copy of it named "ref" as its reference model;
        # drop the copy when training ends, so that only the trained adapter is saved.
        callbacks = [] if previous_adapter is None else [_DropReferenceAdapter()]
        return KTOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config, callbacks=callbacks)

    return train_adapter(make_trainer, base_dir, adapter_dir, checkpoint_dir, params.finetune, params.tracking,
                         run_name, run_params or {}, {"stage": "selftrain", "method": "kto"} | (tags or {}), inputs)


def training_rows(method: E3Method, trajectories: Sequence[Trajectory], params: Params, source: str):
    if method == "sft":
        return sft_rows(trajectories, params.e3.top_k, source)
    return kto_rows(trajectories, params.e3.top_k, params.e3.bottom_k, source)


def selftrain(biased_share: float, method: E3Method, trajectories_path: Path, base_dir: Path, adapter_dir: Path,
              rounds_dir: Path, work_dir: Path, params: Params) -> list[dict[str, Any]]:
    """``e3.rounds`` rounds of self-training; returns each round's training summary.

    Round 1 trains on ``trajectories_path`` (collected with the base model by ``deceptionlab simulate``);
    round r > 1 first collects new trajectories with the model of round r-1. ``rounds_dir`` receives,
    atomically, each round's training rows (``round-<r>.rows.jsonl``) and the trajectories collected
    here (``round-<r>.trajectories.jsonl``); ``work_dir`` holds the checkpoints and the adapters of the
    rounds before the last, and is removed at the end. The last round's adapter goes to ``adapter_dir``.
    """
    condition = Condition.e3(biased_share, method).name
    trajectories = read_trajectories(trajectories_path)
    source = str(trajectories_path)
    previous_adapter: Path | None = None
    summaries = []
    with atomic_directory(rounds_dir) as out:
        for round_number in range(1, params.e3.rounds + 1):
            if round_number > 1:
                source = str(rounds_dir / f"round-{round_number}.trajectories.jsonl")
                trajectories = simulate(biased_share, base_dir, previous_adapter,
                                        out / f"round-{round_number}.trajectories.jsonl", params, round_number)
            rows = training_rows(method, trajectories, params, source)
            if not rows:
                raise DataError(f"{source}: no reply to train on (every selected reply is blank)")
            rows_path = out / f"round-{round_number}.rows.jsonl"
            write_jsonl(rows_path, rows)
            last = round_number == params.e3.rounds
            target = adapter_dir if last else work_dir / f"adapter-round-{round_number}"
            train = selftrain_sft if method == "sft" else selftrain_kto
            summary = train(
                rows, base_dir, target, work_dir / f"checkpoints-round-{round_number}", params,
                f"{condition}-round{round_number}", previous_adapter,
                run_params={"e3": params.e3.model_dump(mode="json"),
                            "rows": {"count": len(rows), "sha256": sha256_file(rows_path),
                                     "biased": sum(row.meta["user_type"] == "biased" for row in rows)}},
                tags=Condition.e3(biased_share, method).tracking_tags() | {"round": str(round_number)},
                inputs=[(rows_path, rounds_dir / rows_path.name)],
            )
            summaries.append(summary | {"round": round_number, "rows": len(rows)})
            previous_adapter = target
    shutil.rmtree(work_dir, ignore_errors=True)
    return summaries
