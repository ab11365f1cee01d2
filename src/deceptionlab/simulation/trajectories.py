"""Experiment E3's conversations: simulated users talk with the current model and rate its replies.

Each user of a population (users.py) has one conversation of ``e3.turns`` turns. At each turn the
user speaks (their scenario's script), the model samples ``e3.candidates`` replies, the rater
(raters.py) scores each one for that user, and the conversation goes on with the best-rated reply.
A trajectory keeps every candidate with its rating, so that selftrain.py can pick the best and the
worst replies of each turn.

Sampling is seeded per user (``e3.seed``, the round and the user's id), never per batch: a user's
conversation does not depend on who else is in the population. Because populations are nested
(users.py), the trajectories at two biased shares differ only in the users whose type differs.

    deceptionlab simulate 0.1          # trajectories/p-0.1.jsonl, collected with models/base
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field, model_validator
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from deceptionlab.core.params import E3Params, Params
from deceptionlab.core.records import StrictModel, read_records, write_jsonl
from deceptionlab.evaluation.loglik import Messages
from deceptionlab.simulation.raters import Rater, make_rater
from deceptionlab.simulation.scenarios import (
    UserType,
    load_scenarios,
    load_scenarios_file,
)
from deceptionlab.simulation.users import SimulatedUser, sample_population


class Candidate(StrictModel):
    """One sampled reply and the user's rating of it."""

    reply: str  # blank only if the model generated nothing but special tokens or spaces
    rating: float = Field(allow_inf_nan=False)


def rank_candidates(candidates: Sequence[Candidate]) -> list[int]:
    """Candidate indices from best to worst rated; blank replies last (saying nothing is no reply),
    ties in generation order."""
    return sorted(range(len(candidates)), key=lambda i: (not candidates[i].reply.strip(), -candidates[i].rating, i))


class Turn(StrictModel):
    user_message: str = Field(min_length=1)
    candidates: list[Candidate] = Field(min_length=1)
    chosen: int = Field(ge=0)  # the candidate the conversation went on with: ranking()[0]

    @model_validator(mode="after")
    def _chosen_is_a_candidate(self) -> Turn:
        if self.chosen >= len(self.candidates):
            raise ValueError(f"chosen={self.chosen} but the turn has {len(self.candidates)} candidates")
        return self

    def ranking(self) -> list[int]:
        return rank_candidates(self.candidates)

    @property
    def chosen_reply(self) -> str:
        return self.candidates[self.chosen].reply


class Trajectory(StrictModel):
    """One user's conversation: who they are, and per turn what they said and every candidate reply."""

    user_id: str = Field(min_length=1)
    scenario_id: str = Field(min_length=1)
    user_type: UserType
    round: int = Field(ge=1)  # the self-training round whose model replied (1 = the base model)
    system_prompt: str = Field(min_length=1)
    turns: list[Turn] = Field(min_length=1)

    @property
    def biased(self) -> bool:
        return self.user_type == "biased"

    def context(self, turn: int) -> Messages:
        """The messages the model answered at ``turn``: the system prompt, the earlier turns with their
        chosen replies, then the user's message of this turn."""
        messages: Messages = [{"role": "system", "content": self.system_prompt}]
        for earlier in self.turns[:turn]:
            messages += [{"role": "user", "content": earlier.user_message},
                         {"role": "assistant", "content": earlier.chosen_reply}]
        return messages + [{"role": "user", "content": self.turns[turn].user_message}]


def user_seed(seed: int, round_number: int, user_id: str) -> int:
    """A 32-bit seed of its own for each user and round (crc32: stable across processes, unlike hash())."""
    return zlib.crc32(f"{seed}:{round_number}:{user_id}".encode())


def sample_replies(model, tokenizer, messages: Messages, settings: E3Params) -> list[str]:
    """``e3.candidates`` sampled replies to one conversation, generated as one batch."""
    import torch

    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    encoded = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(next(model.parameters()).device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        output = model.generate(
            **encoded, do_sample=True, temperature=settings.temperature,
            # Plain temperature sampling whatever the model's generation_config says, so that
            # e3.temperature alone sets how varied the candidates are.
            top_k=0, top_p=1.0, num_return_sequences=settings.candidates,
            max_new_tokens=settings.max_new_tokens, min_new_tokens=1, pad_token_id=pad_id,
        )
    new_tokens = output[:, encoded["input_ids"].shape[1] :]
    return [tokenizer.decode(tokens, skip_special_tokens=True).strip() for tokens in new_tokens]


def collect_trajectories(model, tokenizer, users: Sequence[SimulatedUser], rater: Rater, settings: E3Params,
                         round_number: int = 1, description: str = "collect") -> list[Trajectory]:
    """One conversation per user with the current model (base, or base + the last round's adapter)."""
    from transformers import set_seed

    model.eval()
    trajectories = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn()) as progress:
        task = progress.add_task(description, total=len(users) * settings.turns)
        for user in users:
            seed = user_seed(settings.seed, round_number, user.id)
            set_seed(seed)  # the sampling of this user's replies
            message_rng = random.Random(seed)  # the variation in this user's messages
            messages: Messages = [{"role": "system", "content": user.scenario.task}]
            turns = []
            for t in range(settings.turns):
                messages.append({"role": "user", "content": user.turn(t, message_rng)})
                replies = sample_replies(model, tokenizer, messages, settings)
                ratings = rater.rate_many([user] * len(replies), replies)
                candidates = [Candidate(reply=reply, rating=rating) for reply, rating in zip(replies, ratings, strict=True)]
                turns.append(Turn(user_message=messages[-1]["content"], candidates=candidates,
                                  chosen=rank_candidates(candidates)[0]))
                messages.append({"role": "assistant", "content": turns[-1].chosen_reply})
                progress.advance(task)
            trajectories.append(Trajectory(user_id=user.id, scenario_id=user.scenario.id, user_type=user.user_type,
                                           round=round_number, system_prompt=user.scenario.task, turns=turns))
    return trajectories


def population(biased_share: float, settings: E3Params) -> list[SimulatedUser]:
    """The ``e3.n_users`` users at this biased share, in the packaged scenario bank or ``e3.scenarios_file``."""
    scenarios = load_scenarios_file(settings.scenarios_file) if settings.scenarios_file else load_scenarios()
    return sample_population(settings.n_users, biased_share, settings.seed, scenarios)


def read_trajectories(path: str | Path) -> list[Trajectory]:
    return read_records(path, Trajectory)


def simulate(biased_share: float, base_dir: Path, adapter_dir: Path | None, out_path: Path, params: Params,
             round_number: int = 1) -> list[Trajectory]:
    """Collect the population's trajectories with base (+ adapter) and write them to ``out_path``."""
    from deceptionlab.models.loading import load_evaluated_model

    users = population(biased_share, params.e3)
    rater = make_rater(params.e3)
    model, tokenizer = load_evaluated_model(base_dir, adapter_dir, params.e3.dtype)
    trajectories = collect_trajectories(model, tokenizer, users, rater, params.e3, round_number,
                                        f"collect p={biased_share:g} round {round_number}")
    write_jsonl(out_path, trajectories)
    return trajectories
