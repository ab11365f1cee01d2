"""What the browser checks share (mlflow_ui_check.py, optuna_dashboard_check.py): a server on 127.0.0.1,
Debian's `chromium` driven headless by Playwright, and one-line errors.

Playwright drives the browser apt installed (`executable_path`); it downloads none (no `playwright install`).
A check raises ``CheckFailed`` with one line; ``run_check`` turns it into ``error: <line>`` and exit code 1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
# A 2-core machine: a server starts in ~15 s, a page renders in ~5 s; a machine busy with other work at
# a higher priority, minutes and tens of seconds.
SERVER_START_S = 420
RENDER_S = 90
CHECK_LIMIT_S = int(os.environ.get("BROWSER_CHECK_LIMIT_S", 540))  # a whole check; the tests wait 600 s


step = "starting"  # what the check is doing: said when it runs out of time


class CheckFailed(Exception):
    """What the user sees, on one line."""


def fail(message: str) -> NoReturn:
    raise CheckFailed(" ".join(message.split()))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(command: list[str], probe_url: str, what: str, env: dict[str, str] | None = None) -> Iterator[Callable[[], None]]:
    """``command`` running (with ``env`` added to the environment) until the block ends. It yields
    ``ready()``, which waits until ``probe_url`` answers: a browser can start meanwhile."""
    log = tempfile.TemporaryFile("w+")  # not a pipe: a server logging every request would fill it and stall
    # A session of its own: the server's children (mlflow ui's uvicorn) are ended with it, as a group.
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=os.environ | (env or {}),
                              start_new_session=True)

    def ready() -> None:
        global step
        step = f"waiting for {what} to answer {probe_url}"
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                log.seek(0)
                last = (log.read().strip().splitlines() or ["no output"])[-1]
                fail(f"{what} exited with code {server.returncode} before serving: {last}")
            try:
                with urllib.request.urlopen(probe_url, timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    fail(f"{what} did not answer {probe_url} within {SERVER_START_S} s")
                time.sleep(0.5)

    try:
        yield ready
    finally:
        for signal_number in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(server.pid, signal_number)
                server.wait(timeout=30)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        server.wait()
        try:
            os.killpg(server.pid, signal.SIGKILL)  # whatever of the group outlived its leader
        except ProcessLookupError:
            pass
        log.close()


def chromium_path() -> str:
    chromium = shutil.which("chromium")
    if chromium is None:
        fail("Debian's chromium is not installed (apt-get install -y chromium)")
    return chromium


@contextmanager
def browser_context() -> Iterator[Any]:
    """A browser context of headless Debian chromium (Playwright's sync API: ``context.new_page()``), closed
    with the block."""
    global step
    chromium = chromium_path()
    step = "launching chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        fail("Playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(RENDER_S * 1000)  # clicks and screenshots on a busy machine
            yield context
        finally:
            browser.close()


def wait_shown(locator, what: str, url: str, seconds: float = RENDER_S) -> None:
    """Wait for ``locator`` to be attached to the page; a one-line failure naming ``what`` if it never is."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    global step
    step = f"waiting for {what} on {url}"
    try:
        locator.first.wait_for(state="attached", timeout=seconds * 1000)
    except PlaywrightTimeout:
        fail(f"{url} showed no {what} within {seconds:.0f} s")


def wait_until(page, predicate: str, arg: Any = None, seconds: float = RENDER_S / 3) -> bool:
    """Whether the JavaScript ``predicate(arg)`` came true on the page within ``seconds``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(predicate, arg=arg, timeout=seconds * 1000)
        return True
    except PlaywrightTimeout:
        return False


def coloured_pixels(png: bytes, spread: int = 80) -> int:
    """Pixels of a screenshot that are clearly coloured (not white, grey or black): a chart's markers and
    lines, not its axes, grid or labels."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return sum(1 for r, g, b in image.convert("RGB").getdata() if max(r, g, b) - min(r, g, b) > spread)


def wait_coloured(page, locator, at_least: int, seconds: float = RENDER_S / 3) -> int:
    """The coloured pixels (``coloured_pixels``) of the page's screenshot inside ``locator``'s box, once
    there are ``at_least`` or ``seconds`` have passed: WebGL markers (Plotly's scattergl) are drawn after
    the SVG axes, on a busy machine seconds after. A clip of the page, not the element's own screenshot,
    which waits for the element to keep still, as a busy machine's Plotly may not within the time."""
    global step
    step = f"waiting for coloured markers in {locator}"
    deadline = time.monotonic() + seconds
    while True:
        box = locator.bounding_box()
        coloured = coloured_pixels(page.screenshot(clip=box)) if box and box["width"] and box["height"] else 0
        if coloured >= at_least or time.monotonic() > deadline:
            return coloured
        time.sleep(1.0)


def run_check(check: Callable[..., None]) -> Callable[..., None]:
    """``check`` with its ``CheckFailed`` (and Playwright's errors) as ``error: <one line>``, exit code 1,
    and a time limit (CHECK_LIMIT_S): past it the check fails the same way, its server and browser ended,
    rather than being killed by whoever waits for it and leaving them running."""
    import functools

    def out_of_time(signal_number, frame) -> None:
        fail(f"the check did not finish within {CHECK_LIMIT_S} s ({step})")

    @functools.wraps(check)
    def wrapper(*args, **kwargs) -> None:
        signal.signal(signal.SIGALRM, out_of_time)
        signal.alarm(CHECK_LIMIT_S)
        try:
            check(*args, **kwargs)
        except CheckFailed as error:
            sys.exit(f"error: {error}")
        except Exception as error:  # Playwright's errors span lines: their first says what failed
            if type(error).__module__.startswith("playwright"):
                sys.exit(f"error: the browser failed: {(str(error).strip().splitlines() or [type(error).__name__])[0]}")
            raise
        finally:
            signal.alarm(0)

    return wrapper


def screenshot(page, folder: Path, name: str, full_page: bool = False) -> Path:
    global step
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    step = f"saving screenshot {path}"
    page.screenshot(path=str(path), full_page=full_page, timeout=RENDER_S * 1000)
    return path
