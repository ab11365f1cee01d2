"""Therapist-style scenarios for experiment E3: simulated users who want honest help or validation.

Each scenario (``seeds/therapy_scenarios.yaml``) is one situation, e.g. a relapse or skipping
medication, seen by two kinds of user (docs/design.md, "E3 interaction"):

- a *benign* user wants honest, caring help;
- a *biased* user wants the assistant to validate a harmful choice they have already leaned towards.

Per user type a scenario holds the opening message, follow-up messages, and short descriptions of the
replies that user wants to hear; a rater compares the assistant's reply with those descriptions
(``raters.py``), and ``users.py`` turns scenarios into a population of simulated users.

    scenarios = load_scenarios()
    scenarios[0].script("biased").opening
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import Field, field_validator

from deceptionlab.core.errors import DataError
from deceptionlab.core.records import StrictModel
from deceptionlab.data.seed_tables import SeedEntry, read_seed_table, validated_entries

SEED_FILE = "therapy_scenarios.yaml"
UserType = Literal["benign", "biased"]
USER_TYPES: tuple[UserType, ...] = get_args(UserType)


class UserScript(StrictModel):
    """What one type of user says in a scenario, and what they want to hear back."""

    opening: str = Field(min_length=1)
    follow_ups: tuple[str, ...] = Field(min_length=2)
    # Written as the gist of the reply that user wants, in the assistant's voice, so that a reply's
    # embedding can be compared with them directly.
    desired_responses: tuple[str, ...] = Field(min_length=2)

    @field_validator("follow_ups", "desired_responses")
    @classmethod
    def _no_blank_texts(cls, texts: tuple[str, ...]) -> tuple[str, ...]:
        if any(not text.strip() for text in texts):
            raise ValueError("texts must not be blank")
        return texts


class Scenario(SeedEntry):
    """One situation with a script for each user type; a missing script fails validation."""

    topic: str = Field(min_length=1)
    task: str = Field(min_length=1)  # what the assistant is for; usable as its system prompt
    benign_intent: str = Field(min_length=1)
    biased_intent: str = Field(min_length=1)
    benign: UserScript
    biased: UserScript

    def script(self, user_type: UserType) -> UserScript:
        return self.benign if user_type == "benign" else self.biased

    def intent(self, user_type: UserType) -> str:
        return self.benign_intent if user_type == "benign" else self.biased_intent


def parse_scenarios(raw: object, source: str = SEED_FILE) -> list[Scenario]:
    """Validate a loaded seed table; a bad entry raises DataError naming its index and id."""
    if not isinstance(raw, dict) or "scenarios" not in raw:
        raise DataError(f"{source}: expected a mapping with a list under 'scenarios'")
    scenarios = [scenario for _, scenario in validated_entries(raw["scenarios"], Scenario, source, "scenarios")]
    if not scenarios:
        raise DataError(f"{source}: no scenarios")
    return scenarios


@functools.cache
def _load_table() -> tuple[Scenario, ...]:
    return tuple(parse_scenarios(read_seed_table(SEED_FILE)))


def load_scenarios() -> list[Scenario]:
    """Every scenario of the seed table, in file order."""
    return list(_load_table())


def load_scenarios_file(path: str | Path) -> list[Scenario]:
    """Every scenario of a YAML file in the seed table's form (``e3.scenarios_file``), in file order."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such scenarios file (e3.scenarios_file)") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise DataError(f"{path}: not a readable YAML file ({' '.join(str(error).split())})") from None
    except ValueError as error:  # an integer of more than 4300 digits
        raise DataError(f"{path}: not a readable YAML file ({str(error).split(';')[0]})") from None
    except RecursionError:
        raise DataError(f"{path}: not a readable YAML file (nested too deeply)") from None
    except OSError as error:  # a folder, no permission
        raise DataError(f"{path}: cannot read it ({error.strerror})") from None
    return parse_scenarios(raw, str(path))
