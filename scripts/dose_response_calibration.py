"""The longer calibration of the E2 dose-response analysis (tests/reporting/test_dose_calibration.py
runs 1 and 30 replicates): null and clear-effect datasets with a known curve through the function
the E2 report calls, and how often it claims an effect, resolves the step and covers the truth.

    python scripts/dose_response_calibration.py --replicates 100 [--resamples 200]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reporting"))  # the simulation the tests use

from test_dose_calibration import calibrate  # noqa: E402

from deceptionlab.core.params import Params  # noqa: E402


def main(replicates: Annotated[int, typer.Option(min=2, help="Datasets of each kind (null, effect).")] = 100,
         resamples: Annotated[int, typer.Option(min=10, help="Bootstrap resamples per dataset.")] = 200) -> None:
    """Print the false-positive rate on flat data, and resolution, coverage and width on a clear effect."""
    result = calibrate(replicates, Params.model_validate({"evaluate": {"bootstrap_resamples": resamples}}))
    table = Table(title=f"E2 dose-response calibration: {replicates} datasets each, {resamples} resamples")
    table.add_column("what")
    table.add_column("result")
    for row in result.rows():
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
