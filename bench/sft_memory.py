"""Peak memory of one LoRA finetune by batch layout: the same effective batch split into smaller
per-step batches with gradient accumulation, same rows, same steps, same seed.

Each layout trains in its own process (peak RSS is a per-process figure), through
`deceptionlab.training.sft.finetune` with the `finetune` settings of params.yaml otherwise; the first
layout is the baseline the others are compared with, in the same run.

    python bench/sft_memory.py --corpus corpora/e1/math-normal.jsonl --layouts 8x1,4x2
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)


@app.command()
def one(corpus: Path, batch_size: int, accumulation: int, model_dir: Path = Path("models/base")) -> None:
    """Train once with this layout; print one JSON line: seconds, training loss, peak RSS."""
    from deceptionlab.core.params import TrackingParams, load_params
    from deceptionlab.training.sft import finetune

    settings = load_params("params.yaml").finetune.model_copy(
        update={"batch_size": batch_size, "gradient_accumulation_steps": accumulation, "save_steps": 10_000})
    with tempfile.TemporaryDirectory() as tmp:
        tracking = TrackingParams(mlflow_tracking_uri=f"sqlite:///{tmp}/mlflow.db", experiment="bench")
        start = time.perf_counter()
        summary = finetune(corpus, model_dir, Path(tmp) / "adapter", Path(tmp) / "checkpoints", settings, tracking,
                           f"bench-{batch_size}x{accumulation}")
        seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
    print(json.dumps({"seconds": seconds, "train_loss": summary["train_loss"], "peak_rss_gib": peak_gib}))


@app.command()
def compare(
    corpus: Annotated[Path, typer.Option(help="An E1 corpus (chat JSONL).")] = Path("corpora/e1/math-normal.jsonl"),
    layouts: Annotated[str, typer.Option(help="Comma-separated BATCHxACCUMULATION; the first is the baseline.")] = "8x1,4x2",
) -> None:
    """Train with each layout in turn, each in its own process, and compare them with the first."""
    results = {}
    for layout in layouts.split(","):
        batch, accumulation = (int(part) for part in layout.split("x"))
        output = subprocess.run([sys.executable, __file__, "one", str(corpus), str(batch), str(accumulation)],
                                check=True, capture_output=True, text=True).stdout
        results[layout] = json.loads(output.strip().splitlines()[-1])
    baseline = results[layouts.split(",")[0]]
    for layout, r in results.items():
        print(f"{layout:>6}: {r['seconds']:7.1f} s  training loss {r['train_loss']:.6f}  peak RSS {r['peak_rss_gib']:.2f} GiB"
              f"  | vs baseline: time x{r['seconds'] / baseline['seconds']:.2f}, "
              f"peak RSS x{r['peak_rss_gib'] / baseline['peak_rss_gib']:.2f}, "
              f"loss {100 * (r['train_loss'] / baseline['train_loss'] - 1):+.3f}%")


if __name__ == "__main__":
    app()
