"""Loading a model for training or inference: the base from its safetensors folder, plus an adapter.

Its own module because three stages load models (finetune, evaluate, E3's simulate): each lists
this file in its DVC deps, so a change here reruns exactly the stages that load through it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deceptionlab.core.errors import DataError, ModelError, one_line
from deceptionlab.core.records import parse_json, read_text
from deceptionlab.models.precision import resolve_dtype

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
# What a corrupt folder makes transformers, PEFT and safetensors raise once the checks below passed (a
# config value of the wrong type is a TypeError deep inside PEFT); each is reported with its type and message.
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError)


def _json_object(path: Path) -> dict:
    try:
        raw = parse_json(read_text(path), str(path), line_numbers=True)
    except DataError as error:
        raise ModelError(str(error)) from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return raw


def _check_safetensors(folder: Path, names: tuple[str, ...]) -> None:
    """Every safetensors file of ``folder`` has a readable header that matches its size (not empty,
    not garbage, not truncated); a folder with pickled weights only is refused, never unpickled."""
    from safetensors import SafetensorError, safe_open

    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ModelError(f"{folder}: only pickled weights ({', '.join(pickles)}), which are never loaded; "
                             f"save them as safetensors ({' or '.join(names)})")
        raise ModelError(f"{folder}: no weights ({' or '.join(names)})")
    for path in weights:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise ModelError(f"{path}: not a readable safetensors file ({one_line(str(error))})") from None


def check_model_folder(model_dir: Path) -> None:
    """A ModelError naming the file unless ``model_dir`` holds a config, a tokenizer and readable safetensors."""
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir}: not a model folder (no config.json); run the base_model stage first")
    _json_object(model_dir / "config.json")
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{model_dir}: no tokenizer ({', '.join(TOKENIZER_FILES)}); run the base_model stage again")
    _check_safetensors(model_dir, ("model.safetensors", "model-*.safetensors"))


def check_adapter_folder(adapter_dir: Path) -> None:
    """A ModelError naming the file unless ``adapter_dir`` holds a LoRA config and readable safetensors."""
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelError(f"{adapter_dir}: no LoRA adapter here (no adapter_config.json)")
    config = _json_object(adapter_dir / "adapter_config.json")
    if config.get("peft_type") != "LORA":  # every adapter here is a LoRA adapter (finetune, selftrain)
        raise ModelError(f"{adapter_dir / 'adapter_config.json'}: peft_type {config.get('peft_type')!r}, "
                         "not a LoRA adapter ('LORA')")
    _check_safetensors(adapter_dir, ("adapter_model.safetensors",))


def _load_error(folder: Path, error: Exception) -> ModelError:
    lines = str(error).strip().splitlines() or [""]
    return ModelError(f"{folder}: cannot load it ({type(error).__name__}: {one_line(lines[0])[:300]})")


def load_model(model_dir: Path, dtype: str, trust_remote_code: bool = False):
    """A causal LM and its tokenizer from a local safetensors folder (never from pickles, never the hub).

    ``dtype`` is a torch dtype's name; resolve ``auto`` first (deceptionlab.precision).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_model_folder(model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=getattr(torch, dtype), use_safetensors=True, trust_remote_code=trust_remote_code,
            local_files_only=True,
        )
    except LOAD_ERRORS as error:
        raise _load_error(model_dir, error) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def inference_device(device: str) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for, but torch sees no CUDA device")
    return torch.device(device)


def load_evaluated_model(base_dir: Path, adapter_dir: Path | None, dtype: str, device: str = "auto"):
    """The base (+ a LoRA adapter, merged) in ``dtype`` on ``device``, ready for inference.

    ``dtype: auto`` resolves for that device; the model's ``dtype`` and ``device`` say what it got.
    """
    target = inference_device(device)
    if adapter_dir is not None:  # before the base loads: a broken adapter fails in a second
        check_adapter_folder(adapter_dir)
    model, tokenizer = load_model(base_dir, resolve_dtype(dtype, target))
    if adapter_dir is not None:
        from peft import PeftModel

        try:
            # Merged weights score exactly as base + adapter, at the cost of the base alone.
            model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
        except LOAD_ERRORS as error:
            raise _load_error(adapter_dir, error) from None
    model.to(target).eval()
    return model, tokenizer
