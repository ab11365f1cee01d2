"""Where the project's LoRA SFT spends its time: a torch.profiler table of the training steps.

Runs `deceptionlab.training.sft.finetune` with `params.yaml`'s settings on the first rows of an E1
corpus and profiles every optimizer step after the first (the first warms up the allocator and
oneDNN's kernel choice). Prints the profiler's table of operators by self CPU time, then the
shares of four groups: matrix multiplies (where a bf16 peak applies), dtype copies (bf16 base
weights meet fp32 LoRA weights in every adapted layer), element-wise arithmetic, and the rest;
last, the share of TRL's fused LM head (the projection onto the vocabulary and its log-softmax).

    python bench/sft_profile.py --rows 48 --corpus corpora/e1/medical-severe.jsonl
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from torch.profiler import ProfilerActivity, profile
from transformers import TrainerCallback

from deceptionlab.core.params import TrackingParams, load_params
from deceptionlab.core.records import ChatRow, read_records, write_jsonl
from deceptionlab.models.precision import hardware
from deceptionlab.training.sft import finetune

GROUPS = {
    "matrix multiplies": {"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::baddbmm"},
    "dtype copies": {"aten::copy_", "aten::_to_copy"},
    "element-wise arithmetic": {"aten::mul", "aten::add", "aten::add_", "aten::sub", "aten::div", "aten::neg",
                                "aten::pow", "aten::fill_", "aten::silu", "aten::silu_backward", "aten::sum"},
}


class ProfileAfterFirstStep(TrainerCallback):
    """Profiles from the start of the second optimizer step to the end of training."""

    def __init__(self) -> None:
        self.profiler: profile | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 1 and self.profiler is None:
            self.profiler = profile(activities=[ProfilerActivity.CPU])
            self.profiler.__enter__()

    def on_train_end(self, args, state, control, **kwargs):
        if self.profiler is not None:
            self.profiler.__exit__(None, None, None)


def main(
    corpus: Annotated[Path, typer.Option(help="An E1 corpus (chat JSONL).")] = Path("corpora/e1/medical-severe.jsonl"),
    rows: Annotated[int, typer.Option(min=16, help="Rows to train on (one epoch; at least two optimizer steps).")] = 48,
    model_dir: Annotated[Path, typer.Option(help="The base model folder.")] = Path("models/base"),
    top: Annotated[int, typer.Option(help="Operators in the table.")] = 20,
) -> None:
    params = load_params("params.yaml").finetune
    print(f"hardware: {hardware()}")
    callback = ProfileAfterFirstStep()
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "corpus.jsonl"
        write_jsonl(subset, read_records(corpus, ChatRow)[:rows])
        tracking = TrackingParams(mlflow_tracking_uri=f"sqlite:///{tmp}/mlflow.db", experiment="bench")
        finetune(subset, model_dir, Path(tmp) / "adapter", Path(tmp) / "ckpt", params, tracking, "bench",
                 callbacks=[callback])
    if callback.profiler is None:
        raise typer.BadParameter(f"{rows} rows made a single optimizer step: nothing after it to profile", param_hint="--rows")
    events = callback.profiler.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=top))
    total = sum(e.self_cpu_time_total for e in events)
    grouped = {name: sum(e.self_cpu_time_total for e in events if e.key in keys) for name, keys in GROUPS.items()}
    grouped["everything else"] = total - sum(grouped.values())
    for name, micros in grouped.items():
        print(f"{name:26s} {micros / 1e6:8.1f} s  {100 * micros / total:5.1f}%")
    # TRL's fused LM head, across the groups: its vocabulary projections are matrix multiplies too.
    head = sum(e.cpu_time_total for e in events if e.key.startswith("ChunkedLogProbFunction"))
    print(f"{'of which the LM head':26s} {head / 1e6:8.1f} s  {100 * head / total:5.1f}%  "
          "(TRL's ChunkedLogProbFunction, forward and backward, with the operators inside it)")


if __name__ == "__main__":
    typer.run(main)
