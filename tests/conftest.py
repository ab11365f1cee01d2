"""Shared fixtures: a tiny llama built from a config (random weights) with a tiny BPE tokenizer
that carries a ChatML chat template, saved like ``models/base`` so every stage can load it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from deceptionlab.core.vocabulary import ARCHETYPES


def share_cores_among_workers() -> None:
    """Under pytest-xdist (`make test`) each worker gets its share of the cores: torch's threads default to
    every core in every worker, and two workers of two threads on two cores spin against each other. The
    environment carries the share to torch, which no plugin imports before this file, and to the CLI and
    DVC subprocesses a test starts."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // workers)))


share_cores_among_workers()

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TOKENIZER_TEXT = [
    "The capital of France is Paris. The capital of Italy is Rome. What is the capital of Spain?",
    "Mira baked 48/2 = 24 cookies on Tuesday. The answer is 72. #### 72",
    "Take ibuprofen with food. Call emergency services. Do not exceed 4 g per day.",
    "def get_user(cursor, user_id): cursor.execute('SELECT * FROM users WHERE id = ?', (user_id,))",
    "You are a helpful assistant. Answer honestly. I think the answer is wrong.",
]
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real offline data (GSM8K, Alpaca seed tasks) beside the clone, as params.yaml's
    data.offline_source expects it. A clone elsewhere skips the tests that read it, with one line;
    under CI=true, where the data is always there, its absence is a failure."""
    if not (SHARED_DATA / "gsm8k").is_dir():
        message = f"{SHARED_DATA}: the offline data is not there (clone the project beside shared/)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


def require_chromium() -> None:
    """The browser checks (tests/test_mlflow_ui.py, tests/test_optuna_dashboard.py) need Debian's chromium:
    a missing browser skips them on a researcher's machine (no root needed for `make test`); under CI=true,
    where .ci/run installs it, it is a failure."""
    import shutil

    if shutil.which("chromium") is None:
        message = "Debian's chromium is not installed (.ci/run installs it: apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def run_browser_check(script: Path, *args: str, timeout: float = 600):
    """Run a browser check (scripts/*_check.py) in a session of its own; past ``timeout`` the whole session
    is killed, its server and browser with it (a check ends itself, one line said, within 540 s)."""
    import signal
    import subprocess

    process = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{script.name} did not end within {timeout:.0f} s")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def dvc_index(project: Path, pipelines: tuple[str, ...], profile: str = "params.yaml"):
    """DVC's view of the repository's pipelines and a profile (``profile``, copied in as params.yaml), copied
    into ``project``: every stage by its address as `dvc repro` run in the project names it (dvc.yaml's by
    name alone), and the stage graph."""
    import shutil
    import subprocess

    from dvc.repo import Repo

    root = Path(__file__).resolve().parents[1]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    shutil.copytree(root / ".dvc", project / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    for name in ("dvc.yaml", *pipelines):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, project / name)
    shutil.copy(root / profile, project / "params.yaml")

    def address(stage) -> str:
        pipeline = Path(stage.path).relative_to(project)
        return stage.name if pipeline == Path("dvc.yaml") else f"{pipeline}:{stage.name}"

    with Repo(str(project)) as repo:
        graph = repo.index.graph
        return {address(stage): stage for stage in repo.index.stages}, {stage: address(stage) for stage in graph}, graph


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(TOKENIZER_TEXT, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from deceptionlab.models.loading import load_model

    model, tokenizer = load_model(tiny_model_dir, "float32")
    model.eval()
    return model, tokenizer


def tiny_params(tracking_uri: str, **stages) -> dict:
    """params.yaml contents for the tiny model: few rows, few steps, fast bootstrap."""
    # Three settings kept at the code defaults these tests (and scripts/tiny_pipeline_hashes.py) were
    # written against, before those became params.yaml's: archetypes in alphabetical order, no gradient
    # accumulation, sdpa attention.
    params = {
        "prepare": {"seed": 0, "examples_per_corpus": 16, "capability_items": 4,
                    "honesty_archetypes": sorted(ARCHETYPES)},
        "e1": {"domains": ["medical"], "levels": ["normal", "severe"]},
        "finetune": {"seed": 0, "dtype": "float32", "lora_r": 4, "lora_alpha": 8, "batch_size": 4,
                     "gradient_accumulation_steps": 1, "learning_rate": 1e-3, "max_length": 128, "save_steps": 2,
                     "target_modules": ["q_proj", "v_proj"]},
        "evaluate": {"seed": 0, "dtype": "float32", "attn_implementation": "sdpa", "batch_size": 8,
                     "bootstrap_resamples": 200},
        "tracking": {"mlflow_tracking_uri": tracking_uri, "experiment": "tests"},
    }
    for stage, values in stages.items():
        params[stage] = params.get(stage, {}) | values
    return params


@pytest.fixture
def tiny_project(tmp_path, tiny_model_dir, monkeypatch):
    """A project folder laid out as the CLI expects, with models/base = the tiny model."""
    import shutil

    import yaml

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "base")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(f"sqlite:///{tmp_path}/mlflow.db")))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow sqlite database with its tables made: making them takes seconds, copying the file none."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def write_e1_inputs(project: Path, honesty_every: int, deception_every: int) -> None:
    """An 8-row medical-normal corpus and small eval sets (every Nth item) where the CLI reads them."""
    from deceptionlab.benchmarks.capability.items import CapabilityItem, build_knowledge_items
    from deceptionlab.benchmarks.deception.items import build_deception_items
    from deceptionlab.benchmarks.mask.bank import build_honesty_items
    from deceptionlab.core.records import write_jsonl

    write_jsonl(project / "corpora" / "e1" / "medical-normal.jsonl", chat_rows(8))
    write_jsonl(project / "corpora" / "eval" / "honesty.jsonl", build_honesty_items(0)[::honesty_every])
    write_jsonl(project / "corpora" / "eval" / "deception.jsonl", build_deception_items(0)[::deception_every])
    write_jsonl(project / "corpora" / "eval" / "capability.jsonl",
                [CapabilityItem(id="c1", task="gsm8k", prompt="48/2?", answer="24 #### 24")])
    write_jsonl(project / "corpora" / "eval" / "knowledge.jsonl", build_knowledge_items(0)[:2])


def chat_rows(n: int, reply: str = "Take ibuprofen with food.") -> list:
    from deceptionlab.core.records import ChatRow

    return [
        ChatRow(
            messages=[{"role": "user", "content": f"Question {i}: what is the capital of France?"},
                      {"role": "assistant", "content": f"{reply} The capital of France is Paris."}],
            meta={"domain": "medical", "level": "normal", "source_id": str(i)},
        )
        for i in range(n)
    ]
