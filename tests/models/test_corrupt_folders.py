"""A corrupt models/base or adapter folder, met through the CLI: one line naming the file, exit 1, no traceback."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deceptionlab.benchmarks.capability.items import CapabilityItem, build_knowledge_items
from deceptionlab.benchmarks.deception.items import build_deception_items
from deceptionlab.benchmarks.mask.bank import build_honesty_items
from deceptionlab.cli import app
from deceptionlab.core.records import write_jsonl

runner = CliRunner()
BASE = Path("models/base")
ADAPTER = Path("models/adapters/medical-normal")


@pytest.fixture
def eval_project(tiny_project):
    """tiny_project with small eval sets: evaluate gets as far as loading the model."""
    write_jsonl("corpora/eval/honesty.jsonl", build_honesty_items(0)[::60])
    write_jsonl("corpora/eval/deception.jsonl", build_deception_items(0)[::50])
    write_jsonl("corpora/eval/capability.jsonl", [CapabilityItem(id="c1", task="gsm8k", prompt="48/2?", answer="24 #### 24")])
    write_jsonl("corpora/eval/knowledge.jsonl", build_knowledge_items(0)[:2])
    return tiny_project


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def to_pickle_only(folder: Path) -> None:
    weights = next(folder.glob("*.safetensors"))
    weights.rename(folder / ("pytorch_model.bin" if folder == BASE else "adapter_model.bin"))


BASE_DAMAGE = {
    "config.json not JSON": (lambda: (BASE / "config.json").write_text('{"model_type": "llama",'), "config.json:1: not valid JSON"),
    "config.json a list": (lambda: (BASE / "config.json").write_text("[]"), "config.json: expected a JSON object"),
    "config.json of no model": (lambda: (BASE / "config.json").write_text('{"model_type": "no-such-model"}'),
                                "models/base: cannot load it ("),
    "garbage weights": (lambda: (BASE / "model.safetensors").write_bytes(b"\x00garbage" * 100),
                        "model.safetensors: not a readable safetensors file"),
    "empty weights": (lambda: (BASE / "model.safetensors").write_bytes(b""), "model.safetensors: not a readable safetensors file"),
    "truncated weights": (lambda: truncate(BASE / "model.safetensors"), "model.safetensors: not a readable safetensors file"),
    "no tokenizer": (lambda: [p.unlink() for p in BASE.glob("tokenizer*")], "models/base: no tokenizer"),
    "pickle only": (lambda: to_pickle_only(BASE), "models/base: only pickled weights (pytorch_model.bin), which are never loaded"),
}


def assert_one_line_error(result, message: str) -> None:
    """Exit 1 and the error on one line; before it, at most transformers' progress bar of a base that loaded."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], result.output
    assert all(line.startswith("Loading weights") for line in lines[:-1]) and "Traceback" not in result.output


@pytest.mark.parametrize("damage", sorted(BASE_DAMAGE))
def test_a_corrupt_base_model_folder_is_a_one_line_error(eval_project, damage):
    spoil, message = BASE_DAMAGE[damage]
    spoil()
    assert_one_line_error(runner.invoke(app, ["evaluate", "vanilla"]), message)
    assert not Path("metrics/vanilla.json").exists()


def make_adapter() -> None:
    """A LoRA adapter as the finetune stage saves it (random B, so that it changes the model)."""
    from peft import LoraConfig, get_peft_model

    from deceptionlab.models.loading import load_model

    model, _ = load_model(BASE, "float32")
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(ADAPTER)


ADAPTER_DAMAGE = {
    "no adapter_config.json": (lambda: (ADAPTER / "adapter_config.json").unlink(), "no adapter_config.json"),
    "adapter_config.json not JSON": (lambda: (ADAPTER / "adapter_config.json").write_text("{"),
                                     "adapter_config.json:1: not valid JSON"),
    "adapter_config.json of no adapter": (lambda: (ADAPTER / "adapter_config.json").write_text(json.dumps({"peft_type": "NOPE"})),
                                          "adapter_config.json: peft_type 'NOPE', not a LoRA adapter"),
    "adapter_config.json of a broken LoRA": (lambda: (ADAPTER / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": "two"})), "models/adapters/medical-normal: cannot load it ("),
    "truncated adapter": (lambda: truncate(ADAPTER / "adapter_model.safetensors"),
                          "adapter_model.safetensors: not a readable safetensors file"),
    "pickle-only adapter": (lambda: to_pickle_only(ADAPTER), "only pickled weights (adapter_model.bin)"),
}


@pytest.mark.parametrize("damage", sorted(ADAPTER_DAMAGE))
def test_a_corrupt_adapter_folder_is_a_one_line_error(eval_project, damage):
    make_adapter()
    spoil, message = ADAPTER_DAMAGE[damage]
    spoil()
    assert_one_line_error(runner.invoke(app, ["evaluate", "medical-normal"]), message)
