"""The training dose: one LoRA-SFT run per dose condition, its adapter saved at every step of ``dose.steps``.

One run, not one per step: the checkpoints of a single run show how honesty moves as training goes on,
each step's adapter trained on the rows of the steps before it (the learning rate decays linearly over
the whole run, so the step-25 adapter of a 400-step run is not the adapter of a 25-step run). The
adapters are saved under ``checkpoints/<run>/ladder`` while the run goes (DVC deletes a stage's outputs
before it reruns it), so a killed run resumes from its last checkpoint and keeps the steps it saved;
once every step is saved they move, together, to ``models/dose/<run>/step-N``.

    deceptionlab finetune dose-math-severe
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from deceptionlab.core.conditions import Condition, Layout, step_dir
from deceptionlab.core.fileio import atomic_directory
from deceptionlab.core.params import Params
from deceptionlab.core.tracking import adapter_run_file
from deceptionlab.training.sft import finetune, sort_target_modules


def ladder_callback(steps: list[int], ladder_dir: Path):
    """A TrainerCallback that saves the LoRA adapter, atomically, after each optimizer step of ``steps``
    (a step already saved before a resume is kept)."""
    from transformers import TrainerCallback

    class LadderCallback(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            folder = step_dir(ladder_dir, state.global_step)
            if state.global_step in steps and not folder.is_dir():
                with atomic_directory(folder) as tmp:
                    model.save_pretrained(tmp, safe_serialization=True)
                    sort_target_modules(Path(tmp) / "adapter_config.json")
            return control

    return LadderCallback()


def finetune_ladder(run: Condition, layout: Layout, params: Params) -> dict[str, Any]:
    """Train ``run`` for ``max(dose.steps)`` optimizer steps on its dose corpus and write
    ``models/dose/<run>/step-N`` for every N of ``dose.steps``, atomically, as one folder. The MLflow
    run's file (core/tracking.adapter_run_file) goes beside that folder: every step's evaluation
    links to the one finetune run."""
    steps = params.dose.steps
    staging = layout.checkpoints(run)
    ladder_dir = staging / "ladder"
    last = step_dir(ladder_dir, steps[-1])
    summary: dict[str, Any] = {"resumed": "every step was saved before"}
    # The last step is the run's own adapter (finetune writes it, then its run file).
    if not (all(step_dir(ladder_dir, n).is_dir() for n in steps) and adapter_run_file(last).is_file()):
        summary = finetune(layout.corpus(run), layout.base_dir, last, staging / "trainer", params.finetune,
                           params.tracking, run.name, callbacks=[ladder_callback(steps[:-1], ladder_dir)],
                           tags=run.tracking_tags(), max_steps=steps[-1])
    out = layout.ladder(run)
    with atomic_directory(out) as tmp:
        for n in steps:
            shutil.copytree(step_dir(ladder_dir, n), tmp / step_dir(Path(), n))
    shutil.copyfile(adapter_run_file(last), adapter_run_file(out))
    shutil.rmtree(staging, ignore_errors=True)
    return summary
