"""Open optuna-dashboard as a user would and check that a study's trials are plotted (the sweep's browser view,
sweeps/study.py: `optuna-dashboard sqlite:///sweeps/optuna.db`).

Serves `optuna-dashboard` on 127.0.0.1 over the storage and renders it in headless Debian chromium
(Playwright), then checks, in the rendered pages:

- the study list shows the study's name;
- clicking it opens the study's page, titled with it, and its history plot (x: Trial) draws one SVG marker
  per complete trial, at the trial's (number, objective value);
- its analytics page draws the slice plot of the objective against the param (``--param``, default
  mixture_ratio): one SVG marker per trial, at the trial's (param, value).

Saves a screenshot of each page. Exit code 1 with a one-line reason when anything is missing. The page
structure read (plot ids, Plotly's classes) is optuna-dashboard 0.21.0's, the version pinned in pyproject.toml.
Single-objective studies (the plots of a multi-objective study's first objective are not checked).

    python scripts/optuna_dashboard_check.py --storage sqlite:///sweeps/optuna.db --study e2-sweep \
        --screenshots docs/optuna_dashboard
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import optuna
import typer
from headless import RENDER_S, browser_context, chromium_path, fail, free_port, run_check, screenshot, served, wait_shown, wait_until


def dashboard_command(storage: str, port: int) -> list[str]:
    """optuna-dashboard's console script beside this Python (the venv's), else the one on PATH."""
    import shutil

    beside = Path(sys.executable).with_name("optuna-dashboard")
    script = str(beside) if beside.is_file() else shutil.which("optuna-dashboard")
    if script is None:
        fail("optuna-dashboard is not installed (pip install -e .)")
    return [script, "--host", "127.0.0.1", "--port", str(port), "--quiet", storage]


def plotted(page, plot_id: str) -> list[tuple[float, float]]:
    """The (x, y) of every marker of the Plotly plot ``#plot_id`` (its traces drawn as markers)."""
    traces = page.locator(f"#{plot_id}").evaluate("p => (p.data || []).map(t => ({x: t.x, y: t.y, mode: t.mode}))")
    return sorted((float(x), float(y)) for t in traces if "markers" in (t["mode"] or "") for x, y in zip(t["x"] or [], t["y"] or [],
                                                                                                      strict=False))


def wait_titles(page, plot_id: str, url: str, x: str, y: str | None) -> tuple[str, str]:
    """Wait until ``#plot_id`` has axis titles (``x``, and ``y`` where given); returns the titles drawn."""
    wait_shown(page.locator(f"#{plot_id} text.xtitle"), f"plot #{plot_id}", url)
    wait_until(page, """([id, x, y]) => {
        const p = document.getElementById(id);
        return p && p.querySelector('text.xtitle')?.textContent === x && (y === null || p.querySelector('text.ytitle')?.textContent === y);
    }""", [plot_id, x, y])
    titles = page.locator(f"#{plot_id}").evaluate("p => [p.querySelector('text.xtitle')?.textContent, p.querySelector('text.ytitle')?.textContent]")
    if titles[0] != x or (y is not None and titles[1] != y):
        fail(f"{url}: plot #{plot_id} has axis titles {titles}, not {[x, y]}")
    return titles[0], titles[1]


def same(drawn: list[tuple[float, float]], logged: list[tuple[float, float]]) -> bool:
    return len(drawn) == len(logged) and all(abs(a - c) < 1e-9 and abs(b - d) < 1e-9 for (a, b), (c, d) in zip(drawn, logged, strict=True))


def check_points(page, plot_id: str, expected: list, what: str, coordinates: str) -> tuple[list, int]:
    """The plot's points and SVG marker count; a one-line failure unless they are the trials' ``expected``."""
    drawn = plotted(page, plot_id)
    if not same(drawn, expected):
        fail(f"{what} draws {drawn}, not its trials' {coordinates} {expected}")
    markers = page.locator(f"#{plot_id} .scatterlayer path.point").count()
    if markers != len(expected):
        fail(f"{what} draws {markers} SVG markers, not {len(expected)}")
    return drawn, markers


@run_check
def main(
    storage: Annotated[str, typer.Option(help="Optuna storage URL.")] = "sqlite:///sweeps/optuna.db",
    study: Annotated[str, typer.Option(help="The study whose plots must render.")] = "e2-sweep",
    param: Annotated[str, typer.Option(help="The param the slice plot must show.")] = "mixture_ratio",
    screenshots: Annotated[Path, typer.Option(help="Folder for the screenshots (PNG).")] = Path("docs/optuna_dashboard"),
) -> None:
    # The storage is checked first: a wrong study or param is an error on any machine, browser or not.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if study not in summaries:
        fail(f"{storage} has no study {study!r} (it holds {', '.join(sorted(summaries)) or 'none'})")
    loaded = optuna.load_study(study_name=study, storage=storage)
    trials = [t for t in loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.values]
    if not trials:
        fail(f"study {study!r} has no complete trial to plot")
    if not any(param in t.params for t in trials):
        fail(f"no complete trial of study {study!r} has param {param!r} (they have {', '.join(sorted(trials[0].params)) or 'none'})")
    history = sorted((float(t.number), float(t.values[0])) for t in trials)
    slice_points = sorted((float(t.params[param]), float(t.values[0])) for t in trials if param in t.params)
    chromium_path()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    lines = []
    with served(dashboard_command(storage, port), f"{base_url}/api/studies", "optuna-dashboard") as ready, \
            browser_context() as context:
        ready()
        page = context.new_page()
        url = f"{base_url}/dashboard"
        page.goto(url, timeout=RENDER_S * 1000)
        # Each study a card "<id>. <name>", a link to its page.
        listed = page.locator('a[href*="/dashboard/studies/"] h5').filter(has_text=re.compile(rf"^\d+\. {re.escape(study)}$"))
        wait_shown(listed, f"study {study!r} in the study list", url)
        screenshot(page, screenshots, "studies")
        lines.append(f"optuna-dashboard on {base_url} lists study {study!r}")

        listed.first.click()  # as a user opens it: the study's id is in the address it goes to
        if not wait_until(page, r"() => /\/dashboard\/studies\/\d+$/.test(location.pathname)", seconds=RENDER_S):
            fail(f"{url}: clicking study {study!r} opened {page.url}, not its page")
        url = page.url
        study_id = int(url.rsplit("/", 1)[1])
        wait_shown(page.get_by_text(f"{study} (id={study_id})", exact=True), f"title {study} (id={study_id})", url)
        _, y_title = wait_titles(page, "plot-history", url, "Trial", None)
        drawn, markers = check_points(page, "plot-history", history, f"the history plot of {study!r}", "(number, value)")
        shot = screenshot(page, screenshots, "history", full_page=True)
        lines.append(f"the page of {study!r} plots {len(drawn)} trials' {y_title} against Trial ({markers} SVG markers; {shot})")

        url = f"{base_url}/dashboard/studies/{study_id}/analytics"
        page.goto(url, timeout=RENDER_S * 1000)
        wait_titles(page, "plot-slice", url, f"Param {param}", "Objective Value")
        drawn, markers = check_points(page, "plot-slice", slice_points, f"the slice plot of {study!r}", f"({param}, value)")
        shot = screenshot(page, screenshots, "analytics", full_page=True)
        points = ", ".join(f"({x:.3g}, {y:.3g})" for x, y in drawn)
        lines.append(f"the analytics page of {study!r} plots Objective Value against Param {param}: {points} "
                     f"({markers} SVG markers; {shot})")
    print("\n".join(lines))
    print(f"screenshots: {screenshots}")


if __name__ == "__main__":
    typer.run(main)
