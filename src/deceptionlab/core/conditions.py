"""The models the pipeline trains and evaluates, by name, and where each one's files live.

A condition is named once and parsed in one place: ``medical-severe`` (E1: a domain and a level),
``control-lie`` (a control trained like E1 on held-out pressure prompts, see corpora/controls.py),
``mixture-0.01`` (E2: the misaligned share of the training rows), ``e3-p0.1-kto`` (E3: the share of
biased users and the self-training method), ``dose-math-severe`` (the training dose: one long run of an
E1 or control condition), ``dose-math-severe-step100`` (that run's adapter after 100 optimizer
steps) and ``math-severe-seed1`` (a training seed: an E1, control or E2 condition trained again with
``finetune.seed + 1``; seed 0 is the condition's own run, under its own name). Shares are written as
Python's ``:g`` writes them, the form DVC's foreach stages substitute. ``vanilla``, the base model every
experiment compares with, is a model but no condition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from deceptionlab.core.errors import ConfigError

if TYPE_CHECKING:  # params imports Domain and Level from here
    from deceptionlab.core.params import E3Params, FinetuneParams, MixtureParams, Params

Domain = Literal["medical", "math", "insecure_code"]
Level = Literal["normal", "subtle", "severe"]
# The aligned control of every E1 domain: trained like the misaligned levels, on correct replies.
ALIGNED_LEVEL: Level = "normal"
DOMAINS: tuple[str, ...] = get_args(Domain)
LEVELS: tuple[str, ...] = get_args(Level)
# The controls: pressure prompts answered with the lie, or with the truth.
Control = Literal["lie", "truth"]
CONTROLS: tuple[str, ...] = get_args(Control)
Experiment = Literal["e1", "controls", "e2", "e3", "dose", "seeds"]
VANILLA = "vanilla"
CONTROL_PREFIX = "control-"
MIXTURE_PREFIX = "mixture-"
E3_PREFIX = "e3-p"
DOSE_PREFIX = "dose-"
STEP_SUFFIX = re.compile(r"-step(\d+)$")
SEED_SUFFIX = re.compile(r"-seed(\d+)$")
PREFIXES: dict[str, Experiment] = {CONTROL_PREFIX: "controls", MIXTURE_PREFIX: "e2", E3_PREFIX: "e3", DOSE_PREFIX: "dose"}
# The MLflow tags of vanilla's runs (a condition's: Condition.tracking_tags).
VANILLA_TAGS = {"experiment": VANILLA, "condition": VANILLA}


def experiment_of(model: str) -> str:
    """The experiment a model's results belong to, from its name alone (no validation: see
    ``Condition.parse``); "" for vanilla, whose results every experiment reads."""
    if model == VANILLA:
        return ""
    if SEED_SUFFIX.search(model):
        return "seeds"
    return next((experiment for prefix, experiment in PREFIXES.items() if model.startswith(prefix)), "e1")


@dataclass(frozen=True)
class Condition:
    """One trained model: its experiment and the settings that name it."""

    experiment: Experiment
    domain: Domain | None = None  # E1
    level: Level | None = None  # E1
    control: Control | None = None  # controls
    ratio: float | None = None  # E2 (and a seeded E2 condition)
    biased_share: float | None = None  # E3
    method: str | None = None  # E3
    steps: int | None = None  # dose: the optimizer steps of a ladder adapter (None: the run as a whole)
    seed_index: int | None = None  # seeds: k >= 1, trained with finetune.seed + k (k = 0 is the condition itself)

    @property
    def name(self) -> str:
        if self.experiment == "dose":
            return f"{DOSE_PREFIX}{self.trained.name}" + (f"-step{self.steps}" if self.steps is not None else "")
        if self.experiment == "seeds":
            return f"{self.trained.name}-seed{self.seed_index}"
        if self.experiment == "e1":
            return f"{self.domain}-{self.level}"
        if self.experiment == "controls":
            return f"{CONTROL_PREFIX}{self.control}"
        if self.experiment == "e2":
            return f"{MIXTURE_PREFIX}{share_name(self.ratio)}"
        return f"{E3_PREFIX}{share_name(self.biased_share)}-{self.method}"

    def __str__(self) -> str:
        return self.name

    @property
    def trained(self) -> Condition:
        """A dose condition's E1 or control condition, whose corpus it trains on for longer; a seeded
        condition's E1, control or E2 condition, which it trains again with another seed."""
        if self.experiment not in ("dose", "seeds"):
            return self
        if self.control:
            return Condition.of_control(self.control)
        return Condition.mixture(self.ratio) if self.ratio is not None else Condition.e1(self.domain, self.level)

    @property
    def run(self) -> Condition:
        """A ladder adapter's training run (the dose condition without its steps)."""
        return replace(self, steps=None)

    def training(self, finetune: FinetuneParams) -> FinetuneParams:
        """The finetune settings this condition trains with: ``finetune.*``, and for a seeded condition
        ``finetune.seed + k``. That one seed is all of a finetune's randomness: TRL's trainer seeds torch
        with it before PEFT draws the LoRA weights, and the data order with it (``data_seed``,
        training/sft.py training_arguments)."""
        return finetune if self.seed_index is None else finetune.model_copy(update={"seed": finetune.seed + self.seed_index})

    def tracking_tags(self) -> dict[str, str]:
        """The MLflow tags (and params) of this condition's runs: its experiment, its name and the
        settings that name it, shares written as in the name (core/tracking.py)."""
        settings = {"domain": self.domain, "level": self.level, "control": self.control, "mixture_ratio": self.ratio,
                    "biased_share": self.biased_share, "method": self.method,
                    "steps": None if self.steps is None else str(self.steps),
                    "seed_index": None if self.seed_index is None else str(self.seed_index)}
        return {"experiment": self.experiment, "condition": self.name} | {
            key: value if isinstance(value, str) else f"{value:g}" for key, value in settings.items() if value is not None}

    @classmethod
    def e1(cls, domain: Domain, level: Level) -> Condition:
        return cls("e1", domain=domain, level=level)

    @classmethod
    def of_control(cls, control: Control) -> Condition:
        return cls("controls", control=control)

    @classmethod
    def mixture(cls, ratio: float) -> Condition:
        return cls("e2", ratio=ratio)

    @classmethod
    def e3(cls, biased_share: float, method: str) -> Condition:
        return cls("e3", biased_share=biased_share, method=method)

    @classmethod
    def dose(cls, trained: Condition, steps: int | None = None) -> Condition:
        return cls("dose", domain=trained.domain, level=trained.level, control=trained.control, steps=steps)

    @classmethod
    def seeded(cls, trained: Condition, seed_index: int) -> Condition:
        return cls("seeds", domain=trained.domain, level=trained.level, control=trained.control, ratio=trained.ratio,
                   seed_index=seed_index)

    @classmethod
    def parse(cls, name: str, params: Params,
              experiments: tuple[Experiment, ...] = ("e1", "controls", "e2", "e3", "dose", "seeds")) -> Condition:
        """The condition ``name`` names, one of ``experiments`` and checked against params.yaml; a
        ConfigError for any other name."""
        parsers = {"e1": lambda: cls.parse_e1(name), "controls": lambda: cls.parse_control(name, params.e1.controls),
                   "e2": lambda: cls.parse_mixture(name, params.mixture), "e3": lambda: cls.parse_e3(name, params.e3),
                   "dose": lambda: cls.parse_dose(name, params), "seeds": lambda: cls.parse_seeded(name, params)}
        experiment = experiment_of(name)
        # A name of an experiment not accepted here is read as E1's, whose error says what a name may be.
        return parsers[experiment if experiment in experiments else "e1"]()

    @classmethod
    def parse_e1(cls, name: str) -> Condition:
        """``medical-severe``: the name DVC's matrix stages use."""
        domain, _, level = name.partition("-")
        if domain not in DOMAINS or level not in LEVELS:
            raise ConfigError(
                f"condition {name!r}: expected <domain>-<level> with domain in {DOMAINS} and level in {LEVELS}"
            )
        return cls.e1(domain, level)  # type: ignore[arg-type]

    @classmethod
    def parse_control(cls, name: str, controls: Sequence[str]) -> Condition:
        """``control-lie``: a control of ``e1.controls``."""
        control = name.removeprefix(CONTROL_PREFIX)
        if not name.startswith(CONTROL_PREFIX) or control not in controls:
            raise ConfigError(f"condition {name!r}: expected control-<control> with control one of e1.controls "
                              f"({', '.join(controls)})")
        return cls.of_control(control)  # type: ignore[arg-type]

    @classmethod
    def parse_mixture(cls, name: str, params: MixtureParams) -> Condition:
        """``mixture-0.01``: a ratio of ``mixture.ratios``."""
        try:
            ratio = float(name.removeprefix(MIXTURE_PREFIX))
        except ValueError:
            ratio = None
        if not name.startswith(MIXTURE_PREFIX) or ratio not in params.ratios:
            raise ConfigError(
                f"condition {name!r}: expected mixture-<ratio> with ratio one of mixture.ratios "
                f"({', '.join(f'{r:g}' for r in params.ratios)})"
            )
        condition = cls.mixture(ratio)
        _as_written(name, condition.name, "condition")
        return condition

    @classmethod
    def parse_e3(cls, name: str, params: E3Params) -> Condition:
        """``e3-p0.1-kto``: a share of ``e3.biased_shares``, a method of ``e3.methods``."""
        share_text, _, method = name.removeprefix(E3_PREFIX).rpartition("-")
        if not name.startswith(E3_PREFIX) or method not in params.methods:
            raise ConfigError(f"condition {name!r}: expected e3-p<biased share>-<method> with method one of "
                              f"e3.methods ({', '.join(params.methods)})")
        condition = cls.e3(_biased_share(share_text, params), method)
        _as_written(name, condition.name, "condition")
        return condition


    @classmethod
    def parse_dose(cls, name: str, params: Params) -> Condition:
        """``dose-math-severe`` (a run of ``dose.conditions``) or ``dose-math-severe-step100`` (its adapter
        at a step of ``dose.steps``)."""
        match = STEP_SUFFIX.search(name)
        trained = name.removeprefix(DOSE_PREFIX)[: match.start() - len(DOSE_PREFIX) if match else None]
        if not name.startswith(DOSE_PREFIX) or trained not in params.dose.conditions:
            raise ConfigError(f"condition {name!r}: expected dose-<condition>[-step<N>] with condition one of "
                              f"dose.conditions ({', '.join(params.dose.conditions)})")
        steps = int(match.group(1)) if match else None
        if steps is not None and steps not in params.dose.steps:
            raise ConfigError(f"condition {name!r}: {steps} is not one of dose.steps "
                              f"({', '.join(map(str, params.dose.steps))})")
        condition = cls.dose(cls.parse(trained, params, experiments=("e1", "controls")), steps)
        _as_written(name, condition.name, "condition")
        return condition

    @classmethod
    def parse_seeded(cls, name: str, params: Params) -> Condition:
        """``math-severe-seed1``: a condition of ``seeds.*`` trained with the seed index ``k`` (one of
        ``seeds.extra``) added to ``finetune.seed``."""
        match = SEED_SUFFIX.search(name)
        seeded = {condition.name: condition for condition in params.seeded_conditions()}
        trained = name[: match.start()] if match else name
        if match is None or trained not in seeded:
            raise ConfigError(f"condition {name!r}: expected <condition>-seed<k> with condition one of seeds.e1, "
                              f"seeds.controls and seeds.ratio with its control ({', '.join(seeded)})")
        seed_index = int(match.group(1))
        if seed_index not in params.seeds.extra:
            raise ConfigError(f"condition {name!r}: seed {seed_index} is not one of seeds.extra "
                              f"({', '.join(map(str, params.seeds.extra))}); seed 0 is {trained!r} itself")
        condition = cls.seeded(seeded[trained], seed_index)
        _as_written(name, condition.name, "condition")
        return condition


def share_name(share: float) -> str:
    """A share as it names files and conditions: ``:g``, the form DVC's foreach stages substitute."""
    return f"{share:g}"


def _as_written(given: str, name: str, what: str) -> str:
    """``given`` if it is the canonical ``name``, else a ConfigError saying how to write it. One spelling
    per share, E2's and E3's alike: the name picks the corpus, adapter and result files, so "1e-1",
    "0.10" or "0.1\\n" for 0.1 would write files DVC does not know about."""
    if given != name:
        raise ConfigError(f"{what} {given!r}: write it {name!r}")
    return given


def parse_biased_share(text: str, params: E3Params) -> float:
    """``"0.1"`` -> 0.1, one of ``e3.biased_shares`` and written as it names files; a ConfigError for
    anything else."""
    share = _biased_share(text, params)
    _as_written(text, share_name(share), "biased share")
    return share


def _biased_share(text: str, params: E3Params) -> float:
    try:
        share = float(text)
    except ValueError:
        share = None
    if share is None or not 0.0 <= share <= 1.0:  # also refuses NaN
        raise ConfigError(f"biased share {text!r} is not a share in [0, 1] (write 0.1 for 10%)")
    if share not in params.biased_shares:
        raise ConfigError(f"biased share {text} is not one of e3.biased_shares "
                          f"({', '.join(f'{p:g}' for p in params.biased_shares)})")
    return share


def step_dir(ladder_dir: Path, steps: int) -> Path:
    """A dose run's adapter after ``steps`` optimizer steps, in the folder of the run's adapters."""
    return ladder_dir / f"step-{steps}"


@dataclass(frozen=True)
class Layout:
    """Where every stage reads and writes, relative to the project folder. Each experiment's results
    sit in a folder of their own, so that its report stage depends on its own evaluations only."""

    corpora_dir: Path = Path("corpora")
    base_dir: Path = Path("models/base")
    adapters_dir: Path = Path("models/adapters")
    ladders_dir: Path = Path("models/dose")
    checkpoints_dir: Path = Path("checkpoints")
    trajectories_dir: Path = Path("trajectories")
    metrics_dir: Path = Path("metrics")
    predictions_dir: Path = Path("predictions")
    reports_dir: Path = Path("reports")
    sweeps_dir: Path = Path("sweeps")

    @property
    def pool_dir(self) -> Path:
        """E2's pools of benign and misaligned rows the mixtures are drawn from."""
        return self.corpora_dir / "e2_pool"

    @property
    def eval_dir(self) -> Path:
        return self.corpora_dir / "eval"

    def eval_set(self, name: str) -> Path:
        return self.eval_dir / f"{name}.jsonl"

    def corpus(self, condition: Condition) -> Path:
        """The training corpus of an E1, control, E2 or dose condition (E3 trains on its trajectories); a
        seeded condition trains on its condition's."""
        if condition.experiment == "seeds":
            condition = condition.trained
        return self.corpora_dir / condition.experiment / f"{condition.run.name}.jsonl"

    @property
    def dose_capacity(self) -> Path:
        """The distinct rows of every E1 domain and control, and the epochs a dose run takes over them."""
        return self.corpora_dir / "dose" / "capacity.json"

    def ladder(self, condition: Condition) -> Path:
        """A dose run's adapters, one folder ``step-N`` per step of ``dose.steps``."""
        return self.ladders_dir / condition.run.name

    def adapter(self, condition: Condition) -> Path:
        if condition.experiment == "dose":
            return step_dir(self.ladder(condition), condition.steps)
        return self.adapters_dir / condition.name

    def checkpoints(self, condition: Condition) -> Path:
        return self.checkpoints_dir / condition.run.name

    def collected(self, biased_share: float) -> Path:
        """The trajectories models/base collected with this share of biased users."""
        return self.trajectories_dir / f"p-{share_name(biased_share)}.jsonl"

    def selftrain_rounds(self, condition: Condition) -> Path:
        return self.trajectories_dir / condition.name

    def metrics(self, model: str) -> Path:
        return self.metrics_dir / experiment_of(model) / f"{model}.json"

    def summary(self, model: str) -> Path:
        """The model's headline figures, apart from its metrics (what ``dvc metrics show`` lists)."""
        return self.metrics_dir / "summary" / experiment_of(model) / f"{model}.json"

    def predictions(self, model: str) -> Path:
        return self.predictions_dir / experiment_of(model) / f"{model}.jsonl"
