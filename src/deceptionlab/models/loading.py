"""Loading a model for training or inference: the base from its safetensors folder, plus an adapter.

Its own module because three stages load models (finetune, evaluate, E3's simulate): each lists
this file in its DVC deps, so a change here reruns exactly the stages that load through it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deceptionlab.core.errors import ModelError
from deceptionlab.models.precision import resolve_dtype


def load_model(model_dir: Path, dtype: str, trust_remote_code: bool = False):
    """A causal LM and its tokenizer from a local safetensors folder (never from pickles, never the hub).

    ``dtype`` is a torch dtype's name; resolve ``auto`` first (deceptionlab.precision).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir}: not a model folder (no config.json); run the base_model stage first")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=getattr(torch, dtype), use_safetensors=True, trust_remote_code=trust_remote_code,
        local_files_only=True,
    )
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
    model, tokenizer = load_model(base_dir, resolve_dtype(dtype, target))
    if adapter_dir is not None:
        from peft import PeftModel

        if not (adapter_dir / "adapter_config.json").is_file():
            raise ModelError(f"{adapter_dir}: no LoRA adapter here (no adapter_config.json)")
        # Merged weights score exactly as base + adapter, at the cost of the base alone.
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.to(target).eval()
    return model, tokenizer
