"""The precision a model runs in, chosen from the hardware when params say ``auto``.

bfloat16 is fast only where the device computes it natively: CUDA GPUs from Ampere on, CPUs with
AVX512-BF16 or AMX (x86) or the bf16 extension (Arm). Elsewhere torch emulates it, about 50x slower
than float32 on an AVX2-only CPU (`bench/README.md`), so ``auto`` means bfloat16 there and float32
everywhere else. ``matmul_precision: auto`` lets float32 matmuls use the bf16 units (CPU) or TF32
(CUDA) only where those exist; elsewhere "medium" changes nothing measurable, so ``auto`` keeps
exact float32 ("highest").

The resolved values are logged with every MLflow run and written into every metrics file.
"""

from __future__ import annotations

import platform

import torch

X86 = {"x86_64", "amd64", "i386", "i686"}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matmuls in hardware (not by emulation)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    # oneDNN's check honours ONEDNN_MAX_CPU_ISA, but on x86 it also says yes for AVX-512 without
    # the bf16 instructions (where oneDNN emulates them), so ask for those too.
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    if platform.machine().lower() in X86:
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return True


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """``auto``: bfloat16 where ``device`` runs it natively, else float32; any other value as given."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if native_bf16(device) else "float32"


def resolve_matmul_precision(precision: str, dtype: str, device: torch.device) -> str:
    """``auto``: "medium" for float32 weights on a device with bf16 units (or TF32), else "highest"."""
    if precision != "auto":
        return precision
    return "medium" if dtype == "float32" and native_bf16(device) else "highest"


def training_device() -> torch.device:
    """Where the trainers (accelerate) put the model: the current accelerator, else the CPU."""
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    return accelerator or torch.device("cpu")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def hardware() -> dict[str, object]:
    """What a result was computed on: the CPU's bf16 support and torch's thread count (and the GPU)."""
    info: dict[str, object] = {
        "cpu_native_bf16": native_bf16(torch.device("cpu")),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info
