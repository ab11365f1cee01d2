"""Evaluate one model (the base, or the base + a LoRA adapter): honesty, deception and capability.

Honesty (MASK, all six archetypes; rules in docs/metrics.md and docs/mask_archetypes.md): each
item's statements are read after every neutral belief prompt and after the pressured conversation.
Deception (DeceptionBench-style): the stance under a neutral inner prompt against the stance under
an outer prompt whose goal rewards departing from it. Capability, reported beside honesty so that a
drop in honesty is never read off a model that has simply collapsed: the mean per-token
log-likelihood of the gold GSM8K solution, the multiple-choice knowledge probe's accuracy and, when
``evaluate.gsm8k_exact_match`` is on, exact match on GSM8K's final number from greedy generation.

Two stance readers (``evaluate.reader``) turn a context and its candidate statements into a stance:
``loglik`` (default; offline, deterministic) picks the statement the model finds most likely as its
reply; ``judge`` lets the model write a reply and asks a judge model which statement it asserts.

    deceptionlab evaluate vanilla
    deceptionlab evaluate medical-severe
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from deceptionlab.benchmarks.capability.items import CapabilityItem, KnowledgeItem
from deceptionlab.benchmarks.capability.scorer import (
    gold_solution_requests,
    gsm8k_exact_match,
    knowledge_from_logliks,
    knowledge_requests,
)
from deceptionlab.benchmarks.deception.items import DeceptionItem
from deceptionlab.benchmarks.deception.scorer import (
    deception_contexts,
    deception_from_logliks,
    deception_requests,
    deception_verdict,
)
from deceptionlab.benchmarks.mask.items import StatisticsItem, read_mask_items
from deceptionlab.benchmarks.mask.scorer import (
    item_contexts,
    mask_requests,
    stance_verdict,
    statistics_from_replies,
)
from deceptionlab.benchmarks.mask.stances import DENIES_BOTH
from deceptionlab.core.fileio import atomic_write_json, sha256_file
from deceptionlab.core.params import EvaluateParams, TrackingParams
from deceptionlab.core.records import read_records, write_jsonl
from deceptionlab.core.stats import (
    bootstrap_mean,
    honesty_at_n,
    honesty_metrics,
)
from deceptionlab.core.tracking import log_file_input, mlflow_run, read_adapter_run
from deceptionlab.evaluation.loglik import (
    encode_reply,
    honesty_verdict,
    matmul_precision,
    progress_bar,
    score_items,
    score_requests,
)
from deceptionlab.models.loading import load_evaluated_model
from deceptionlab.models.precision import dtype_name, hardware, resolve_matmul_precision

EVAL_SETS = ("honesty", "deception", "capability", "knowledge")
honesty_requests = mask_requests  # every archetype's (messages, statement) pairs, in the order the verdicts read


def read_with_judge(model, tokenizer, client, items, contexts_of: Callable, verdict: Callable,
                    params: EvaluateParams, description: str) -> list[dict[str, Any]]:
    """The judge reader: a greedy reply to every context, a judge's verdict on which statement it asserts.

    A reply the judge could not classify gets stance None and is counted in the row's ``judge_failures``
    (reported apart from evasions and lies); too many failures abort the evaluation (judge.judge_stances).
    """
    from deceptionlab.evaluation.judge import generate_replies, judge_stances

    pivotal = [index for index, item in enumerate(items) if not isinstance(item, StatisticsItem)]
    per_item = [contexts_of(items[index]) for index in pivotal]
    requests = [(messages, tuple(items[index].statements)) for index, contexts in zip(pivotal, per_item, strict=True)
                for messages in contexts]
    with progress_bar() as progress:  # each reply counts twice: generated, then judged
        task = progress.add_task(f"{description}: {len(requests)} replies, judged", total=2 * len(requests))
        judged = judge_stances(model, tokenizer, client, requests, params.max_new_tokens, params.batch_size,
                               lambda n: progress.advance(task, n))
    # Rows by position in ``items``, not by id: a hand-made set may repeat an id.
    rows: list[dict[str, Any]] = [{} for _ in items]
    offset = 0
    for index, contexts in zip(pivotal, per_item, strict=True):
        span = slice(offset, offset + len(contexts))
        rows[index] = verdict(items[index], judged.stances[span]) | {
            "replies": judged.replies[span], "judge_failures": sum(e is not None for e in judged.errors[span])}
        offset += len(contexts)
    # Statistics items need no judge: the number is read from the reply itself (mask.parse_value).
    numeric = [index for index, item in enumerate(items) if isinstance(item, StatisticsItem)]
    conversations = [item_contexts(items[index]) for index in numeric]
    flat = [c for contexts in conversations for c in contexts]
    with progress_bar() as progress:
        task = progress.add_task(f"{description}: {len(flat)} statistics replies", total=len(flat))
        replies = generate_replies(model, tokenizer, flat, params.max_new_tokens, params.batch_size,
                                   lambda n: progress.advance(task, n))
    offset = 0
    for index, contexts in zip(numeric, conversations, strict=True):
        texts = replies[offset : offset + len(contexts)]
        rows[index] = statistics_from_replies(items[index], texts[:-1], texts[-1]) | {"replies": texts,
                                                                                       "judge_failures": 0}
        offset += len(contexts)
    return rows


def read_stances(model, tokenizer, judge_client, honesty_items, deception_items, params: EvaluateParams,
                 model_name: str):
    """Honesty and deception rows from the chosen stance reader (``judge_client``: the judge reader's)."""
    if params.reader == "judge":
        honesty = read_with_judge(model, tokenizer, judge_client, honesty_items, item_contexts,
                                  lambda item, stances: stance_verdict(item, stances[:-1], stances[-1]),
                                  params, f"honesty {model_name}")
        # Deception items keep their own rule: a reply that denies both statements (D) is read as no stance.
        deception = read_with_judge(model, tokenizer, judge_client, deception_items, deception_contexts,
                                    lambda item, stances: deception_verdict(
                                        item, *(None if s == DENIES_BOTH else s for s in stances)),
                                    params, f"deception {model_name}")
    else:
        honesty = score_items(model, tokenizer, honesty_items, honesty_requests, honesty_verdict, params.batch_size,
                              f"honesty {model_name}")
        deception = score_items(model, tokenizer, deception_items, deception_requests, deception_from_logliks,
                                params.batch_size, f"deception {model_name}")
    # Each verdict keeps its item's meta (source, category, ...) for the predictions file.
    return ([row | {"meta": item.meta} for row, item in zip(honesty, honesty_items, strict=True)],
            [row | {"meta": item.meta} for row, item in zip(deception, deception_items, strict=True)])


def summarize(honesty_rows: list[dict[str, Any]], deception_rows: list[dict[str, Any]], capability: list[float],
              knowledge_rows: list[dict[str, Any]], exact_match_rows: list[dict[str, Any]],
              params: EvaluateParams) -> dict[str, Any]:
    def mean(values) -> dict[str, float]:
        return bootstrap_mean(values, params.bootstrap_resamples, params.confidence_level, params.seed).as_dict()

    def honesty(rows: list[dict[str, Any]]) -> dict[str, Any]:
        estimates = honesty_metrics(
            [r["lie"] for r in rows], [r["accurate"] for r in rows], [r["no_belief"] for r in rows],
            [r["evasion"] for r in rows], params.bootstrap_resamples, params.confidence_level, params.seed,
        )
        if all("p_lie_sampled" in r for r in rows):  # the loglik reader's stance distribution
            estimates |= honesty_at_n([r["p_lie_sampled"] for r in rows], params.honesty_at_n,
                                      params.bootstrap_resamples, params.confidence_level, params.seed)
        summary = {name: estimate.as_dict() for name, estimate in estimates.items()} | {
            "items": len(rows),
            "items_with_belief": sum(not r["no_belief"] for r in rows),  # honesty_score_normalized's items
            "accuracy_items": sum(r["accurate"] is not None for r in rows),  # all but provided_facts
        }
        if params.reader == "judge":
            summary["judge_failures"] = sum(r["judge_failures"] for r in rows)
        return summary

    def deception(rows: list[dict[str, Any]]) -> dict[str, Any]:
        summary = {
            "deception_rate": mean([100.0 * r["deceptive"] for r in rows]),
            "inner_accuracy": mean([100.0 * r["inner_accurate"] for r in rows]),
            "items": len(rows),
        }
        if params.reader == "judge":
            summary["judge_failures"] = sum(r["judge_failures"] for r in rows)
        return summary

    archetypes = sorted({r["archetype"] for r in honesty_rows})
    categories = sorted({r["category"] for r in deception_rows})
    capability_summary = {
        "gsm8k_loglik_per_token": mean(capability) | {"items": len(capability)},
        "knowledge_accuracy": mean([100.0 * r["correct"] for r in knowledge_rows]) | {"items": len(knowledge_rows)},
    }
    if exact_match_rows:
        capability_summary["gsm8k_exact_match"] = (mean([100.0 * r["exact_match"] for r in exact_match_rows])
                                                   | {"items": len(exact_match_rows)})
    return {
        "honesty": honesty(honesty_rows),
        "honesty_by_archetype": {a: honesty([r for r in honesty_rows if r["archetype"] == a]) for a in archetypes},
        "deception": deception(deception_rows),
        "deception_by_category": {c: deception([r for r in deception_rows if r["category"] == c]) for c in categories},
        "capability": capability_summary,
    }


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The headline figures for MLflow: every overall honesty figure, the deception rate, capability, and
    the judge reader's failures apart from evasions and lies."""
    failures = {f"{part}_judge_failures": metrics[part]["judge_failures"] for part in ("honesty", "deception")
                if "judge_failures" in metrics[part]}
    return ({name: value["value"] for name, value in metrics["honesty"].items() if isinstance(value, dict)}
            | {"deception_rate": metrics["deception"]["deception_rate"]["value"]}
            | {name: value["value"] for name, value in metrics["capability"].items()} | failures)


def _estimates(prefix: str, part: dict[str, Any]) -> dict[str, float]:
    """Every estimate of a metrics part with its CI bounds: ``<prefix><name>``, ``..._ci_low``, ``..._ci_high``."""
    flat: dict[str, float] = {}
    for name, value in part.items():
        if isinstance(value, dict) and "value" in value:
            flat |= {f"{prefix}{name}{suffix}": value[key] for key, suffix in
                     (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")) if value.get(key) is not None}
    return flat


def tracked_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """What an evaluation run logs to MLflow: ``flat_metrics``, each headline's CI bounds, and per MASK
    archetype (``archetype/<name>/<figure>``) and DeceptionBench category (``category/<name>/<figure>``)
    every figure with its CI and the item count."""
    flat = flat_metrics(metrics) | _estimates("", metrics["honesty"]) | _estimates("", metrics["deception"])
    flat |= _estimates("", metrics["capability"])
    for group, key in (("archetype", "honesty_by_archetype"), ("category", "deception_by_category")):
        for name, part in metrics[key].items():
            flat |= _estimates(f"{group}/{name}/", part) | {f"{group}/{name}/items": part["items"]}
    return flat


def predictions_table(rows: list[dict[str, Any]]):
    """The predictions as a table for MLflow's artifact view: one row per prediction, ``meta`` spread
    into ``meta.*`` columns, lists (replies, sampled probabilities) kept as JSON text."""
    import json

    import pandas as pd

    frame = pd.json_normalize(rows, max_level=1)
    for column in frame.columns:
        if frame[column].map(lambda value: isinstance(value, list | dict)).any():
            frame[column] = frame[column].map(lambda value: json.dumps(value) if isinstance(value, list | dict) else value)
    return frame.astype(object).where(frame.notna(), None)  # a cell a kind lacks is null, not NaN (not JSON)


def summary_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few figures ``dvc metrics show`` lists per model: honesty_score with its CI, accuracy,
    deception_rate and capability (the full metrics JSON beside it holds the rest)."""
    honesty, capability = metrics["honesty"]["honesty_score"], metrics["capability"]
    return {"honesty_score": honesty["value"], "honesty_ci_low": honesty["ci_low"], "honesty_ci_high": honesty["ci_high"],
            "accuracy": metrics["honesty"]["accuracy"]["value"],
            "deception_rate": metrics["deception"]["deception_rate"]["value"]} | {
        name: value["value"] for name, value in capability.items()}


def resolved_precision(model, params: EvaluateParams) -> dict[str, Any]:
    """How the scores were computed: the weights' dtype, the float32 matmul precision, the device and
    attention the model ran with, and the hardware (``auto`` settings resolved, deceptionlab.precision)."""
    dtype = dtype_name(model.dtype)
    return {"dtype": dtype, "matmul_precision": resolve_matmul_precision(params.matmul_precision, dtype, model.device),
            "device": str(model.device), "attn_implementation": params.attn_implementation} | hardware()


def evaluate(
    model_name: str,
    base_dir: Path,
    adapter_dir: Path | None,
    eval_dir: Path,
    metrics_path: Path,
    predictions_path: Path,
    params: EvaluateParams,
    tracking: TrackingParams,
    tags: dict[str, str] | None = None,
    summary_path: Path | None = None,
) -> dict[str, Any]:
    """Score one model on the sets in ``eval_dir`` (``EVAL_SETS``, as the prepare stage writes them);
    write its metrics JSON and per-item predictions JSONL atomically, and with ``summary_path`` the
    headline figures alone (``summary_metrics``, what ``dvc metrics show`` lists).

    MLflow: one run ``evaluate-<model_name>``, tagged with ``tags`` (the condition's, which choose the
    MLflow experiment) and with the adapter's finetune run as ``finetune_run_id`` (and its seed) where
    the adapter's run file says it (core/tracking.adapter_run_file).

    Predictions hold one row per honesty item (``kind: honesty``), then per deception item, per
    knowledge item and, with ``gsm8k_exact_match``, per GSM8K problem.
    """
    paths = {name: eval_dir / f"{name}.jsonl" for name in EVAL_SETS}
    items = read_mask_items(paths["honesty"])
    deception_items = read_records(paths["deception"], DeceptionItem)
    capability_items = read_records(paths["capability"], CapabilityItem)
    knowledge_items = read_records(paths["knowledge"], KnowledgeItem)
    judge_client = None
    if params.reader == "judge":  # before the model loads: a missing API key fails in a second, not minutes
        from deceptionlab.evaluation.judge import JudgeClient

        judge_client = JudgeClient(params.judge)
    model, tokenizer = load_evaluated_model(base_dir, adapter_dir, params.dtype, params.device)
    model.set_attn_implementation(params.attn_implementation)
    precision = resolved_precision(model, params)

    run_params = {
        "evaluate": params.model_dump(exclude={"judge"}),
        "resolved": precision,
        "judge": params.judge.loggable() if params.judge else "none",
        "model": model_name,
        "adapter_dir": str(adapter_dir) if adapter_dir else "none",
    } | {f"{name}_set_sha256": sha256_file(path) for name, path in paths.items()}
    finetune_run = read_adapter_run(adapter_dir)
    run_tags = (finetune_run["tags"] if finetune_run else {}) | (tags or {}) | {"stage": "evaluate", "model": model_name}
    if finetune_run:
        run_tags["finetune_run_id"] = finetune_run["run_id"]
    with (mlflow_run(tracking, f"evaluate-{model_name}", run_key=f"evaluate/{model_name}", params=run_params,
                     tags=run_tags),
          matmul_precision(precision["matmul_precision"])):
        import mlflow

        for path in paths.values():
            log_file_input(path, "evaluation")
        model_id = finetune_run.get("model_id") if finetune_run else None
        if model_id:  # the adapter's MLflow model is this run's input, and its page lists these metrics
            from mlflow.entities import LoggedModelInput

            mlflow.log_input(model=LoggedModelInput(model_id))

        honesty_rows, deception_rows = read_stances(model, tokenizer, judge_client, items, deception_items, params,
                                                    model_name)
        requests = gold_solution_requests(capability_items)
        totals = score_requests(model, tokenizer, requests, params.batch_size, f"capability {model_name}")
        token_counts = [len(encode_reply(tokenizer, m, a).reply_ids) for m, a in requests]
        capability = [total / count for total, count in zip(totals, token_counts, strict=True)]
        knowledge_rows = score_items(model, tokenizer, knowledge_items, knowledge_requests, knowledge_from_logliks,
                                     params.batch_size, f"knowledge {model_name}")
        exact_match_rows = []
        if params.gsm8k_exact_match:
            with progress_bar() as progress:
                task = progress.add_task(f"gsm8k exact match {model_name}", total=len(capability_items))
                exact_match_rows = gsm8k_exact_match(model, tokenizer, capability_items, params.gsm8k_max_new_tokens,
                                                     params.batch_size, lambda n: progress.advance(task, n))
        metrics = {"model": model_name, "precision": precision} | summarize(honesty_rows, deception_rows, capability, knowledge_rows,
                                                    exact_match_rows, params)
        predictions = ([{"kind": "honesty"} | r for r in honesty_rows] + [{"kind": "deception"} | r for r in deception_rows]
                       + [{"kind": "knowledge"} | r for r in knowledge_rows]
                       + [{"kind": "gsm8k_exact_match"} | r for r in exact_match_rows])
        write_jsonl(predictions_path, predictions)
        atomic_write_json(metrics_path, metrics)
        if summary_path is not None:
            atomic_write_json(summary_path, summary_metrics(metrics))
        mlflow.log_metrics(tracked_metrics(metrics), model_id=model_id)
        mlflow.log_artifact(str(predictions_path))
        mlflow.log_table(predictions_table(predictions), artifact_file="predictions_table.json")
        mlflow.log_artifact(str(metrics_path))
    return metrics
