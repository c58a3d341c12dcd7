"""`stacktune ui` over a real search, looked at in headless Chromium; the search's Optuna studies from a fresh
process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import EXAMPLES, REPO, small_search

pytestmark = pytest.mark.slow
NAME = "ui-e2e"
DEPTHS = [1, 2]
TRIALS = 2
REPLICATES = 2  # two searches per depth: the replicate level of the run tree is looked at too
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "tests" / "artifacts"
# Nothing here may phone home: MLflow's and Ray's usage reports stay off.
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "RAY_USAGE_STATS_ENABLED": "0"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def search(tmp_path_factory, shared_ray, mlflow_store):
    """A small real search through the CLI (depths 1 and 2, two searches of each, 2 trials of 2 epochs), into a
    sqlite store of its own."""
    work = tmp_path_factory.mktemp("ui")
    uri = mlflow_store(work)
    # No re-evaluation over seeds: the runs page needs the tuning tree only, and this stays fast.
    proc = small_search(
        EXAMPLES / "sunspots-depths.yaml",
        name=NAME,
        depths=DEPTHS,
        trials=TRIALS,
        cwd=work,
        args=("--out", str(work / "out"), "--tracking-uri", uri, "--replicates", str(REPLICATES), "--json"),
        env={**QUIET_ENV, **shared_ray},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"work": work, "uri": uri, "comparison": json.loads(proc.stdout)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class UI:
    """`stacktune ui` as a user runs it, in its own process group; stop() is its Ctrl-C."""

    def __init__(self, search: dict):
        self.port = _free_port()
        self.work = search["work"]
        self.stdout_path, self.stderr_path = self.work / "ui.stdout", self.work / "ui.stderr"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **QUIET_ENV}
        env.pop("MLFLOW_TRACKING_URI", None)
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stacktune.search.cli",
                    "ui",
                    "--tracking-uri",
                    search["uri"],
                    "--port",
                    str(self.port),
                    "--name",
                    NAME,
                ],
                cwd=self.work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.returncode: int | None = None

    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def wait_for_url(self, timeout: float = 120) -> str:
        """The runs-page address the command prints once the server answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"^search \S+\s+(http://\S+)$", self.stdout_path.read_text(), re.M)
            if found:
                return found.group(1)
            assert self.proc.poll() is None, f"stacktune ui exited {self.proc.returncode}:\n{self.output()}"
            time.sleep(0.2)
        raise AssertionError(f"stacktune ui printed no address in {timeout:.0f} s:\n{self.output()}")

    def stop(self) -> int:
        """Ctrl-C; SIGKILL to its group if that does not end it within 30 s. Safe to call twice."""
        if self.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.returncode = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                self.returncode = -9
            except ProcessLookupError:
                self.returncode = self.proc.wait()
        return self.returncode


@pytest.fixture(scope="module")
def ui(search):
    server = UI(search)
    try:
        url = server.wait_for_url()
        yield {"url": url, "port": server.port, "server": server}
    finally:
        server.stop()
        # The MLflow server dies with `stacktune ui`, even when that had to be killed.
        deadline = time.monotonic() + 15
        while _port_open(server.port) and time.monotonic() < deadline:
            time.sleep(0.2)


def _chromium() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
            "this test drives the real browser and is not skipped"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    """A Playwright page in the system's headless Chromium, on a fresh profile, that can reach 127.0.0.1 only."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the Python package playwright is missing: "
            "pip install -e '.[test]' (it uses /usr/bin/chromium, no download)"
        )

    def local_only(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1" or route.request.url.startswith("data:"):
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            context.route("**/*", local_only)
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            context.close()


def _row(page, run_name: str):
    return page.locator('[role="row"]', has=page.get_by_role("link", name=run_name, exact=True)).first


def _expand(page, parent: str, child: str) -> None:
    """Opens `parent`'s children in the runs table (MLflow shows them collapsed) and waits for `child`."""
    if page.get_by_role("link", name=child, exact=True).count():
        return
    _row(page, parent).locator('[col-id*="Run Name"] button').first.click()
    page.get_by_role("link", name=child, exact=True).wait_for()


def _save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / name)
    return path


def test_ui_prints_the_runs_page_of_the_search(search, ui):
    experiment_id = search["comparison"]["experiment_id"]
    assert ui["url"] == (
        f"http://127.0.0.1:{ui['port']}/#/experiments/{experiment_id}/runs"
        "?orderByKey=attributes.start_time&orderByAsc=true&workflowType=machine_learning"
    )
    assert f"MLflow UI: http://127.0.0.1:{ui['port']}/" in ui["server"].output()


def test_runs_page_shows_the_run_tree_and_val_loss(search, ui, browser_page, tmp_path):
    page = browser_page
    search_run = search["comparison"]["mlflow_run_id"]
    page.goto(ui["url"])
    top = page.locator(f'a[href*="/runs/{search_run}"]').first
    top.wait_for()
    search_name = top.inner_text().strip()
    assert re.fullmatch(r"search-\d{4}-\d{6}", search_name), search_name
    # MLflow opens an assistant side panel on a first visit; close it so the table gets the width.
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count():
        close.first.click()

    # The depth runs are nested under the search run, each depth's searches under it, collapsed until opened.
    assert page.get_by_role("link", name="depth-1", exact=True).count() == 0
    _expand(page, search_name, "depth-1")
    for depth in DEPTHS:
        _expand(page, f"depth-{depth}", f"depth-{depth}-replicate-1")
        for replicate in range(1, REPLICATES + 1):
            _expand(page, f"depth-{depth}-replicate-{replicate}", f"d{depth}-r{replicate}-t00")

    page.get_by_role("button", name="Columns").click()
    page.get_by_text("val_loss", exact=True).click()
    page.keyboard.press("Escape")
    page.locator('[role="columnheader"]', has_text=re.compile(r"^\s*val_loss\s*$")).first.wait_for()
    # Each trial row gets its last epoch's val_loss in the new column.
    # (ag-grid draws a row twice: the pinned run name part and the scrolling part; row-id ties them.)
    row_id = _row(page, "d1-r1-t00").get_attribute("row-id")
    first_trial = page.locator(f'[role="row"][row-id="{row_id}"] [role="gridcell"][col-id*="val_loss"]').first
    assert re.fullmatch(r"\d+(\.\d+)?(e-?\d+)?", first_trial.inner_text().strip()), first_trial.inner_text()

    dom = page.content()
    shot = _save_screenshot(page, tmp_path, "mlflow-runs.png")
    searches = [(d, r) for d in DEPTHS for r in range(1, REPLICATES + 1)]
    expected = [
        search_name,
        *(f"depth-{d}" for d in DEPTHS),
        *(f"depth-{d}-replicate-{r}" for d, r in searches),
        *(f"d{d}-r{r}-t{t:02d}" for d, r in searches for t in range(TRIALS)),
        "val_loss",
    ]
    missing = [text for text in expected if text not in dom]
    assert not missing, f"not on the runs page: {missing}; see {shot}"
    # Oldest first, as the printed address asks: the tree reads in the order the search ran.
    names = [search_name, "depth-1", "depth-1-replicate-1", "d1-r1-t00", "d1-r1-t01", "depth-1-replicate-2"]
    names += ["d1-r2-t00", "depth-2", "depth-2-replicate-1", "d2-r1-t00", "depth-2-replicate-2", "d2-r2-t01"]
    rows = [int(_row(page, name).get_attribute("row-index")) for name in names]
    assert rows == sorted(rows), f"runs out of order on the page: {dict(zip(names, rows, strict=False))}; see {shot}"


def test_comparison_json_opens_from_the_search_run(search, ui, browser_page, tmp_path):
    page = browser_page
    base = ui["url"].split("#")[0]
    experiment_id, run_id = search["comparison"]["experiment_id"], search["comparison"]["mlflow_run_id"]
    page.goto(f"{base}#/experiments/{experiment_id}/runs/{run_id}/artifacts/comparison.json")
    page.get_by_text(f'"search": "{NAME}"').first.wait_for()
    _save_screenshot(page, tmp_path, "mlflow-comparison.png")


def test_ctrl_c_stops_the_ui_and_its_server(ui):
    assert ui["server"].stop() == 0, ui["server"].output()
    deadline = time.monotonic() + 15
    while _port_open(ui["port"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _port_open(ui["port"]), "the MLflow server outlived stacktune ui"


def _one_error_line(proc, needle: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[-1].startswith("error: ") and needle in lines[-1], proc.stderr


def test_a_missing_store_exits_3(cli, tmp_path):
    proc = cli("ui", "--tracking-uri", f"sqlite:///{tmp_path}/absent.db", "--port", str(_free_port()), env=QUIET_ENV)
    assert proc.returncode == 3, proc.stderr
    _one_error_line(proc, "absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_a_file_that_is_no_store_exits_3_and_leaves_no_server(cli, tmp_path):
    (tmp_path / "notes.db").write_text("not a database\n")
    port = _free_port()
    proc = cli(
        "ui", "--tracking-uri", f"sqlite:///{tmp_path}/notes.db", "--port", str(port), env=QUIET_ENV, timeout=120
    )
    assert proc.returncode == 3, proc.stderr
    _one_error_line(proc, "notes.db")
    assert not _port_open(port)


def test_a_port_in_use_exits_3(search, cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("ui", "--tracking-uri", search["uri"], "--port", str(port), env=QUIET_ENV, timeout=120)
    assert proc.returncode == 3, proc.stderr
    _one_error_line(proc, f"port {port}")


def test_optuna_studies_open_from_a_fresh_process(search):
    journal = search["work"] / "out" / NAME / "optuna.journal"
    code = (
        "import json, sys, optuna\n"
        "from optuna.storages import JournalStorage\n"
        "from optuna.storages.journal import JournalFileBackend\n"
        "storage = JournalStorage(JournalFileBackend(sys.argv[1]))\n"
        "studies = {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)"
        " for s in optuna.get_all_study_summaries(storage)}\n"
        "print(json.dumps({n: {'trials': len(s.trials), 'finished': all(t.state.is_finished() for t in s.trials),"
        " 'best': min((t.value for t in s.trials if t.state.name == 'COMPLETE'), default=None)}"
        " for n, s in studies.items()}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(journal)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    studies = json.loads(proc.stdout)
    names = [f"{NAME}.depth-{d}" + (f".replicate-{r}" if r > 1 else "") for d in DEPTHS for r in (1, 2)]
    assert {name: s["trials"] for name, s in studies.items()} == dict.fromkeys(names, TRIALS)
    assert all(s["finished"] for s in studies.values())
    for entry in search["comparison"]["depths"]:
        bests = [studies[f"{NAME}.depth-{entry['depth']}{suffix}"]["best"] for suffix in ("", ".replicate-2")]
        found = [b for b in bests if b is not None]
        assert entry["best_val_loss"] == (pytest.approx(min(found)) if found else None)
