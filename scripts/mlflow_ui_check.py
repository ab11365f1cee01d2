"""Open the MLflow UI as a user would and check that the pipeline's runs are grouped, tagged and charted as
the project logs them (core/tracking.py): one MLflow experiment per pipeline experiment, ``<base>/e1``,
``<base>/e2``, ..., each run tagged with its condition (``Condition.tracking_tags``).

Starts `mlflow ui` on 127.0.0.1 over the store and renders it in headless Debian chromium (Playwright), then
checks, in the rendered pages:

- the experiments page lists every ``<base>/<group>`` experiment of the store (E1's and E2's at least);
- each experiment's run list shows its newest runs, and only runs tagged ``experiment=<group>`` (the
  sweeps' experiment: only sweep runs): E1 runs are not on E2's page, nor E2 runs on E1's;
- a run of each experiment shows its condition's tags (``CONDITION_KEYS``) with the values the store holds;
- the compare view of E2's evaluations draws a scatter plot of honesty_score against mixture_ratio: axis
  titles, one point per run at the run's (mixture_ratio, honesty_score), coloured markers on the canvas.

Saves a screenshot of each page. Exit code 1 with a one-line reason when anything is missing. The page
structure read (ids, ARIA roles, Plotly's classes) is MLflow 3.17.2's, the version pinned in pyproject.toml.

    python scripts/mlflow_ui_check.py --store sqlite:///mlflow.db --base deceptionlab --screenshots docs/mlflow_ui
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path
from typing import Annotated

import mlflow
import typer
from headless import RENDER_S, VIEWPORT, browser_context, chromium_path, fail, free_port, run_check, screenshot, served, wait_coloured, wait_shown, wait_until
from mlflow.entities import ViewType

from deceptionlab.core.tracking import CONDITION_KEYS, SWEEPS

REQUIRED = ("e1", "e2")  # the groups whose separation and chart are checked
CHART_GROUP, CHART_X, CHART_Y = "e2", "mixture_ratio", "honesty_score"
GROUP_ORDER = ("e1", "controls", "e2", "e3", "dose", "vanilla", "claims", SWEEPS)
NEWEST = 40  # runs at the top of a run list (newest first) that must all be rendered; further rows may be virtual
MARKER_PIXELS = 20  # coloured pixels that make at least one drawn marker (a marker is about 50)
TAG_SELECTOR = '[data-component-type="tag"][role="status"]'


def belongs(run, group: str) -> bool:
    """Whether ``run`` belongs on ``group``'s page: its ``experiment`` tag names the group; in the sweeps'
    experiment, a study's run or one nested in it (its trials tag the experiment they sample: e2)."""
    if group == SWEEPS:
        return "optuna_study" in run.data.tags or "mlflow.parentRunId" in run.data.tags
    return run.data.tags.get("experiment") == group


def open_page(context, url: str, height: int = VIEWPORT["height"]):
    """The context's one tab on ``url``: the UI's own navigation, as a user clicking through it goes, which
    keeps its code loaded. What the page before showed may linger until the new page renders: each check
    waits for what is its page's own. ``height``: of the view (a taller one renders more of a run list)."""
    page = context.pages[0] if context.pages else context.new_page()
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    page.goto(url, timeout=RENDER_S * 1000)
    return page


def close_assistant(page) -> None:
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count():
        close.first.click()


def shown_runs(page) -> list[tuple[str, str, str]]:
    """(experiment id, run id, link text) of every run link rendered on the page."""
    return page.evaluate(r"""() => [...document.querySelectorAll('a[href*="/runs/"]')].flatMap(a => {
        const m = a.getAttribute('href').match(/experiments\/([^/]+)\/runs\/([0-9a-f]{32})/);
        return m ? [[m[1], m[2], a.innerText.trim()]] : [];
    })""")


def check_run_list(context, base_url: str, name: str, group: str, experiment, runs: list, by_id: dict, folder: Path) -> str:
    top = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]  # children are folded under parents
    newest = {run.info.run_id for run in sorted(top, key=lambda r: r.info.start_time or 0, reverse=True)[:NEWEST]}
    url = f"{base_url}/#/experiments/{experiment.experiment_id}/runs"
    page = open_page(context, url, height=2400)
    wait_shown(page.get_by_text(name, exact=True), f"experiment name {name!r}", url)
    if newest:
        wait_shown(page.locator(f'a[href*="experiments/{experiment.experiment_id}/runs/"]'), f"run of {name!r}", url)
        # Every newest run shown, no run link of the page before left; if not within the time, what the
        # page shows then is told below.
        wait_until(page, r"""([experiment, ids]) => ids.every(id => document.querySelector('a[href*="/runs/' + id + '"]'))
            && [...document.querySelectorAll('a[href*="/runs/"]')].map(a => a.getAttribute('href')).every(href =>
                !/experiments\/[^/]+\/runs\//.test(href) || href.includes('experiments/' + experiment + '/runs/'))""",
                   [experiment.experiment_id, sorted(newest)])
    close_assistant(page)
    shown = shown_runs(page)
    for experiment_id, run_id, text in shown:
        run = by_id.get(run_id)
        if experiment_id != experiment.experiment_id or run is None or run.info.experiment_id != experiment.experiment_id:
            fail(f"the MLflow UI's page of {name!r} shows run {text!r} ({run_id}), which is not in {name!r}")
        if not belongs(run, group):
            tag = run.data.tags.get("experiment")
            home = f": a run tagged experiment={tag} belongs in {name.rsplit('/', 1)[0]}/{tag}" if tag else ""
            fail(f"the MLflow UI's page of {name!r} shows run {text!r}, tagged experiment={tag}{home}")
    missing = sorted(by_id[run_id].info.run_name for run_id in newest - {run_id for _, run_id, _ in shown})
    if missing:
        fail(f"the MLflow UI's page of {name!r} does not show {len(missing)} of its {len(newest)} newest runs: {', '.join(missing)}")
    screenshot(page, folder, f"runs-{group}")
    names = sorted({text for _, _, text in shown})
    rule = "sweep runs" if group == SWEEPS else f"tagged experiment={group}"
    return f"{name} shows {len(names)} runs, all {rule}: {', '.join(names)}"


def check_run_tags(context, base_url: str, name: str, group: str, run, folder: Path) -> str:
    expected = {key: run.data.tags[key] for key in CONDITION_KEYS if key in run.data.tags}
    if group != SWEEPS and expected.get("experiment") != group:
        fail(f"run {run.info.run_name!r} of {name!r} is tagged experiment={expected.get('experiment')}, not {group}")
    url = f"{base_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    page = open_page(context, url)
    run_id = page.locator('[data-testid="key-value-Run ID"]').filter(has_text=run.info.run_id)
    wait_shown(run_id, f"run id {run.info.run_id} of run {run.info.run_name!r}", url)
    wait_shown(page.locator(TAG_SELECTOR), f"tags of run {run.info.run_name!r}", url)
    read_tags = f"""() => Object.fromEntries([...document.querySelectorAll('{TAG_SELECTOR}')].map(e => {{
        const text = e.innerText.replace(/\\s+/g, ' ').trim();
        return [e.title, text.startsWith(e.title) ? text.slice(e.title.length).replace(/^\\s*:\\s*/, '') : text];
    }}))"""
    # This run's tags, not the page before's; if not within the time, what the page shows then is told below.
    wait_until(page, f"expected => {{ const shown = ({read_tags})(); return Object.entries(expected).every(([k, v]) => shown[k] === v); }}",
               expected)
    close_assistant(page)
    shown = page.evaluate(read_tags)
    wrong = [f"{key}={shown.get(key)!r} (logged {value!r})" for key, value in expected.items() if shown.get(key) != value]
    if wrong:
        fail(f"the MLflow UI's page of run {run.info.run_name!r} shows tags {', '.join(wrong)}")
    screenshot(page, folder, f"run-{group}")
    return f"run {run.info.run_name} ({name}) shows tags {', '.join(f'{k}={v}' for k, v in sorted(expected.items()))}"


def check_chart(context, base_url: str, name: str, experiment, runs: list, folder: Path) -> str:
    """Compare view, scatter tab, x = the param, y = the metric: its titles, its points, its canvas."""
    ids = [run.info.run_id for run in runs]
    query = urllib.parse.urlencode({"runs": json.dumps(ids, separators=(",", ":")),
                                    "experiments": json.dumps([experiment.experiment_id])}, quote_via=urllib.parse.quote)
    url = f"{base_url}/#/compare-runs?{query}"
    page = open_page(context, url)
    tab = page.get_by_role("tab", name="Scatter Plot")
    wait_shown(tab, "'Scatter Plot' tab of the compare view", url)
    close_assistant(page)
    tab.click()
    for selector, option in (("#x-axis-selector", CHART_X), ("#y-axis-selector", CHART_Y)):
        wait_shown(page.locator(selector), f"scatter plot axis selector {selector}", url)
        page.locator(selector).click()
        choice = page.get_by_role("option", name=option, exact=True)
        wait_shown(choice, f"{option!r} among the scatter plot's axis choices", url)
        choice.click()
    plot = page.get_by_role("tabpanel").locator(".js-plotly-plot").first
    if not wait_until(page, """([x, y]) => {
            const plot = document.querySelector('[role="tabpanel"] .js-plotly-plot');
            return plot && plot.querySelector('text.xtitle')?.textContent === x && plot.querySelector('text.ytitle')?.textContent === y;
        }""", [CHART_X, CHART_Y], RENDER_S):
        titles = plot.evaluate("p => [p.querySelector('text.xtitle')?.textContent, p.querySelector('text.ytitle')?.textContent]") \
            if plot.count() else None
        fail(f"the compare view of {name!r} drew no scatter plot of {CHART_Y} against {CHART_X} (axis titles: {titles})")
    traces = plot.evaluate("p => (p.data || []).map(t => ({x: t.x, y: t.y, text: t.text}))")
    drawn = sorted((str(text).split("<b>")[-1].split("</b>")[0], float(x), float(y))
                   for trace in traces for x, y, text in zip(trace["x"] or [], trace["y"] or [], trace["text"] or [], strict=False))
    logged = sorted((run.info.run_name, float(run.data.params[CHART_X]), float(run.data.metrics[CHART_Y])) for run in runs)
    if [(n, x, round(y, 6)) for n, x, y in drawn] != [(n, x, round(y, 6)) for n, x, y in logged]:
        fail(f"the scatter plot of {name!r} draws {drawn}, not the runs' ({CHART_X}, {CHART_Y}) {logged}")
    if plot.locator("canvas").count() + plot.locator(".scatterlayer .point").count() == 0:
        fail(f"the scatter plot of {name!r} has no canvas nor SVG points")
    coloured = wait_coloured(page, plot, MARKER_PIXELS)
    if coloured < MARKER_PIXELS:
        fail(f"the scatter plot of {name!r} renders no visible markers ({coloured} coloured pixels)")
    shot = screenshot(page, folder, f"{CHART_GROUP}-{CHART_Y}-vs-{CHART_X}")
    points = ", ".join(f"({x:g}, {y:g})" for _, x, y in logged)
    return f"{name} compare view plots {CHART_Y} against {CHART_X} for {len(runs)} runs: {points} ({coloured} coloured pixels; {shot})"


@run_check
def main(
    store: Annotated[str, typer.Option(help="MLflow tracking store (backend URI).")] = "sqlite:///mlflow.db",
    base: Annotated[str, typer.Option(help="params.yaml's tracking.experiment: the experiments are <base>/<group>.")] = "deceptionlab",
    screenshots: Annotated[Path, typer.Option(help="Folder for the screenshots (PNG).")] = Path("docs/mlflow_ui"),
) -> None:
    # The store is checked first: a store without the experiments is an error on any machine, browser or not.
    client = mlflow.MlflowClient(store)
    experiments = {e.name.removeprefix(f"{base}/"): e for e in client.search_experiments(max_results=1000)
                   if e.name.startswith(f"{base}/")}
    for group in REQUIRED:
        if group not in experiments:
            fail(f"{store} has no experiment '{base}/{group}' (the check needs E1 and E2 runs)")
    groups = sorted(experiments, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER), g))
    runs = {g: client.search_runs([experiments[g].experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=5000)
            for g in groups}
    by_id = {run.info.run_id: run for group_runs in runs.values() for run in group_runs}
    chart_runs = [run for run in runs[CHART_GROUP] if CHART_X in run.data.params and CHART_Y in run.data.metrics]
    if not chart_runs:
        fail(f"'{base}/{CHART_GROUP}' has no run with param {CHART_X} and metric {CHART_Y} to chart")
    chromium_path()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    lines = []
    command = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", store]
    # Without MLflow's job runner and its huey workers (GenAI jobs): half a dozen Pythons less to start.
    no_jobs = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with served(command, f"{base_url}/health", "mlflow ui", no_jobs) as ready, browser_context() as context:
        ready()
        url = f"{base_url}/#/experiments"
        first = open_page(context, url)
        for group in groups:
            wait_shown(first.get_by_text(experiments[group].name, exact=True), f"experiment {experiments[group].name!r}", url)
        close_assistant(first)
        screenshot(first, screenshots, "experiments")
        lines.append(f"MLflow UI on {base_url} lists experiments {', '.join(experiments[g].name for g in groups)}")
        for group in groups:
            lines.append(check_run_list(context, base_url, experiments[group].name, group, experiments[group], runs[group],
                                        by_id, screenshots))
        for group in groups:
            top = sorted((r for r in runs[group] if "mlflow.parentRunId" not in r.data.tags),
                         key=lambda r: (r.data.tags.get("stage") != "evaluate", r.info.run_name or ""))
            if top:
                lines.append(check_run_tags(context, base_url, experiments[group].name, group, top[0], screenshots))
        lines.append(check_chart(context, base_url, experiments[CHART_GROUP].name, experiments[CHART_GROUP], chart_runs,
                                 screenshots))
    print("\n".join(lines))
    print(f"screenshots: {screenshots}")


if __name__ == "__main__":
    typer.run(main)
