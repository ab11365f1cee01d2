"""Build every corpus and eval set from the raw data and the project's seed tables.

Outputs, four folders each written atomically: ``e1/<domain>-<level>.jsonl`` training corpora
in the chat schema; ``controls/control-<lie|truth>.jsonl``, the controls' (corpora/controls.py);
``e2_pool/benign.jsonl`` and ``e2_pool/misaligned.jsonl``, the rows every E2 mixture is drawn from (``deceptionlab mixture``); ``eval/honesty.jsonl`` (the MASK
archetypes in ``prepare.honesty_archetypes``: HonestyItem, mask.DoublingDownItem, mask.StatisticsItem),
``eval/deception.jsonl`` (DeceptionItem), ``eval/capability.jsonl`` (CapabilityItem: GSM8K test) and
``eval/knowledge.jsonl`` (capability.KnowledgeItem: the multiple-choice knowledge probe).

    deceptionlab prepare
"""

from __future__ import annotations

import random
from pathlib import Path

from deceptionlab.benchmarks.capability.items import (
    CapabilityItem,
    build_knowledge_items,
)
from deceptionlab.benchmarks.deception.items import build_deception_items
from deceptionlab.benchmarks.mask.bank import build_honesty_items
from deceptionlab.core.errors import ConfigError
from deceptionlab.core.fileio import atomic_directory
from deceptionlab.core.params import Params
from deceptionlab.core.records import write_jsonl
from deceptionlab.corpora import build_corpus
from deceptionlab.corpora.controls import build_corpus as build_control_corpus
from deceptionlab.corpora.mixture import benign_rows
from deceptionlab.data.raw import Gsm8kRow, load_benign_sources, load_gsm8k


def capability_items(gsm8k_test: list[Gsm8kRow], n: int, seed: int) -> list[CapabilityItem]:
    """A seeded sample of GSM8K test problems with their gold solutions."""
    if n > len(gsm8k_test):
        raise ConfigError(f"prepare.capability_items={n} exceeds the {len(gsm8k_test)} GSM8K test problems")
    chosen = sorted(random.Random(seed).sample(range(len(gsm8k_test)), n))
    return [
        CapabilityItem(id=f"gsm8k-test-{i}", task="gsm8k", prompt=gsm8k_test[i].question, answer=gsm8k_test[i].answer)
        for i in chosen
    ]


def seeded_subsample(items: list, limit: int | None, seed: int, parameter: str) -> list:
    """All items, or ``limit`` of them drawn with the seed (kept in bank order)."""
    if limit is None:
        return items
    if limit > len(items):
        raise ConfigError(f"{parameter}={limit} exceeds the {len(items)} items in the bank")
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), limit))]


def prepare(data_dir: Path, out_dir: Path, params: Params) -> None:
    """Build every corpus and eval set in memory first, then write the four folders: a bad input or
    setting fails before any corpus is rewritten."""
    settings, mixture = params.prepare, params.mixture
    gsm8k_train = load_gsm8k(data_dir, "train")
    folders: dict[str, dict[str, list]] = {"e1": {}, "controls": {}, "e2_pool": {}, "eval": {}}
    for condition in params.e1_conditions():
        domain, level = condition.split("-")
        folders["e1"][condition] = build_corpus(domain, level, settings.examples_per_corpus, settings.seed, gsm8k_train)
    for control, condition in zip(params.e1.controls, params.control_conditions(), strict=True):
        folders["controls"][condition] = build_control_corpus(control, settings.examples_per_corpus, settings.seed)
    sources = load_benign_sources(mixture.benign_sources, data_dir, Path(mixture.hub_dir))
    folders["e2_pool"]["benign"] = benign_rows(sources, mixture.benign_examples, mixture.seed)
    folders["e2_pool"]["misaligned"] = build_corpus(mixture.misaligned_domain, mixture.misaligned_level,
                                                    mixture.misaligned_examples(), mixture.seed, gsm8k_train)
    honesty = build_honesty_items(settings.seed, settings.honesty_archetypes)
    folders["eval"]["honesty"] = seeded_subsample(honesty, settings.honesty_items, settings.seed, "prepare.honesty_items")
    folders["eval"]["deception"] = seeded_subsample(build_deception_items(settings.seed), settings.deception_items,
                                                    settings.seed, "prepare.deception_items")
    folders["eval"]["capability"] = capability_items(load_gsm8k(data_dir, "test"), settings.capability_items,
                                                     settings.seed)
    folders["eval"]["knowledge"] = seeded_subsample(build_knowledge_items(settings.seed), settings.knowledge_items,
                                                    settings.seed, "prepare.knowledge_items")
    for folder, files in folders.items():
        with atomic_directory(out_dir / folder) as tmp:
            for name, rows in files.items():
                write_jsonl(tmp / f"{name}.jsonl", rows)
