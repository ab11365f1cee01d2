"""Open the MLflow UI as a user would and check that the project's experiment and runs appear.

Starts `mlflow ui` on 127.0.0.1 over the given tracking store, loads the experiment's run list in
headless Chromium (Debian's `chromium`), checks the rendered page for the experiment's run names,
and saves a screenshot. Exit code 1 with a one-line reason when anything is missing.

    python scripts/mlflow_ui_check.py --store sqlite:///mlflow.db --experiment deceptionlab \
        --screenshot docs/mlflow_ui.png
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Annotated

import mlflow
import typer

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,900", "--virtual-time-budget=15000",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


def main(
    store: Annotated[str, typer.Option(help="MLflow tracking store (backend URI).")] = "sqlite:///mlflow.db",
    experiment: Annotated[str, typer.Option(help="Experiment whose runs must appear.")] = "deceptionlab",
    screenshot: Annotated[Path, typer.Option(help="Where to save the screenshot (PNG).")] = Path("docs/mlflow_ui.png"),
) -> None:
    # The store is checked first: a wrong experiment name is an error on any machine, browser or not.
    client = mlflow.MlflowClient(store)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        sys.exit(f"error: {store} has no experiment {experiment!r}")
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("error: Debian's chromium is not installed (apt-get install -y chromium)")
    run_names = {r.info.run_name for r in client.search_runs([found.experiment_id], max_results=500)}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", store],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", 300)  # a busy 2-core machine starts it slowly
        url = f"http://127.0.0.1:{port}/#/experiments/{found.experiment_id}/runs"
        with tempfile.TemporaryDirectory() as profile:
            flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
            page = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([chromium, *flags, f"--screenshot={screenshot.resolve()}", url],
                           capture_output=True, timeout=120, check=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    shown = sorted(name for name in run_names if name and name in page)
    if not shown:
        sys.exit(f"error: the MLflow UI page for {experiment!r} shows none of its {len(run_names)} runs")
    print(f"MLflow UI on 127.0.0.1:{port} shows experiment {experiment!r} with runs: {', '.join(shown)}")
    print(f"screenshot: {screenshot}")


if __name__ == "__main__":
    typer.run(main)
