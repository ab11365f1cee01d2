"""dtype and matmul precision chosen from the hardware (deceptionlab.models.precision)."""

import os
import subprocess
import sys

import pytest
import torch

from deceptionlab.core.params import EvaluateParams, FinetuneParams
from deceptionlab.models.loading import load_evaluated_model
from deceptionlab.models.precision import (
    native_bf16,
    resolve_dtype,
    resolve_matmul_precision,
)

CPU = torch.device("cpu")


def test_auto_is_the_default_of_training_and_collection_and_of_float32_matmuls():
    assert FinetuneParams().dtype == "auto"
    assert EvaluateParams().matmul_precision == "auto"
    assert EvaluateParams().dtype == "float32"  # scoring stays exact-weight float32 unless asked


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_an_explicit_dtype_is_kept_on_any_hardware(dtype):
    assert resolve_dtype(dtype, CPU) == dtype


def test_auto_takes_bfloat16_exactly_where_the_cpu_runs_it_natively():
    assert resolve_dtype("auto", CPU) == ("bfloat16" if native_bf16(CPU) else "float32")


@pytest.mark.parametrize("precision", ["highest", "high", "medium"])
def test_an_explicit_matmul_precision_is_kept(precision):
    assert resolve_matmul_precision(precision, "float32", CPU) == precision


def test_auto_matmul_precision_uses_bf16_units_only_for_float32_weights_where_they_exist():
    assert resolve_matmul_precision("auto", "float32", CPU) == ("medium" if native_bf16(CPU) else "highest")
    assert resolve_matmul_precision("auto", "bfloat16", CPU) == "highest"  # no float32 matmuls to speed up


def _resolved_in_a_process_capped_at_avx2() -> str:
    # oneDNN capped at AVX2 is what an AVX2-only CPU gives it: bf16 only by emulation.
    env = os.environ | {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = ("import torch; from deceptionlab.models.precision import resolve_dtype, resolve_matmul_precision as m; "
            "cpu = torch.device('cpu'); print(resolve_dtype('auto', cpu), m('auto', 'float32', cpu))")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_a_cpu_without_native_bf16_resolves_auto_to_exact_float32():
    assert _resolved_in_a_process_capped_at_avx2() == ["float32", "highest"]


def test_the_evaluated_model_is_loaded_in_the_resolved_dtype(tiny_model_dir):
    model, _ = load_evaluated_model(tiny_model_dir, None, "auto", "cpu")
    assert model.dtype == getattr(torch, resolve_dtype("auto", CPU))
