#!/usr/bin/env bash
# Run a command as on a CPU without native bf16 (AVX2 only), on a machine that has AVX-512/AVX512-BF16:
# oneDNN, MKL and ATen's own kernels are capped at AVX2, so bf16 is emulated as it is there and
# float32 runs on AVX2 kernels. deceptionlab.models.precision sees oneDNN's cap and resolves `auto` as on
# such a CPU. An emulation: it caps instruction sets, not caches or clocks; quote its ratios as such.
#   bench/as_avx2_cpu.sh python bench/sft_speed.py --rows 48
set -euo pipefail
export ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2
exec "$@"
