"""Wrong specs and data through the real command: exit 2, one `error:` line that names the field or file,
the value and what would be valid, and nothing written; an unreachable tracking server: exit 3 within seconds."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml
from conftest import yaml_bomb

SPEC = {
    "name": "bad-input",
    "dataset": {"name": "sine", "window": 4},
    "depths": [1, 2],
    "trials_per_depth": 2,
    "space": {"units": [4, 8]},
    "train": {"epochs": 1},
}
CSV_SPEC = {**SPEC, "dataset": {"csv": "d.csv", "target": "y", "window": 4}}


def _with(path: str, value, base: dict = SPEC) -> dict:
    section, _, leaf = path.rpartition(".")
    if not section:
        return {**base, leaf: value}
    return {**base, section: {**base.get(section, {}), leaf: value}}


def _search(cli, tmp_path, spec: dict, *flags: str):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return cli(
        "search",
        str(path),
        "--out",
        str(tmp_path / "o"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/m.db",
        *flags,
        timeout=120,
    )


def _rejected(proc, tmp_path, *needles: str) -> None:
    """Exit 2, no traceback, the last stderr line is the only `error:` line and holds every needle, nothing written."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.rstrip().endswith(errors[0]), proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "m.db").exists()


@pytest.mark.parametrize(
    "spec, needles",
    [
        (_with("space.unit", [4, 8]), ["space.unit: unknown key; did you mean 'units'?"]),
        (_with("trials_per_depth", "many"), ["trials_per_depth: expected an integer, got 'many'"]),
        (_with("space.units", "abc"), ["space.units: expected a list of choices like [16, 32, 64]", "got 'abc'"]),
    ],
    ids=["did-you-mean", "wrong-type", "union"],
)
def test_wrong_spec_exits_2_with_one_line(cli, tmp_path, spec, needles):
    _rejected(_search(cli, tmp_path, spec), tmp_path, *needles)


def test_too_many_seeds_on_the_command_line_exits_2(cli, tmp_path):
    proc = _search(cli, tmp_path, SPEC, "--seeds", "100000")
    _rejected(proc, tmp_path, "evaluation.seeds", "from 0 to 1000", "got 100000")


@pytest.mark.parametrize(
    "content, needles",
    [
        ("", ["file is empty"]),
        ("t,y\n1,0.5\n2,inf\n3,0.7\n", ["column 'y'", "infinite value 'inf'", "line 3"]),
        ("t,y\n" + "".join(f"{i},{i / 10}\n" for i in range(12)), ["series has 12 rows", "window 4 + horizon 1"]),
    ],
    ids=["empty", "inf", "too-short"],
)
def test_bad_csv_exits_2_naming_the_file(cli, tmp_path, content, needles):
    (tmp_path / "d.csv").write_text(content)
    _rejected(_search(cli, tmp_path, CSV_SPEC), tmp_path, str(tmp_path / "d.csv"), *needles)


# --- sizes: every one has a limit, checked before anything is read, generated or allocated ----------------------

QUICK = 60  # seconds a refused input may take, CLI start-up included


def _search_quickly(cli, tmp_path, *flags: str):
    """`stacktune search spec.yaml` as _search runs it, asserted to end within QUICK seconds."""
    start = time.monotonic()
    proc = cli(
        "search",
        str(tmp_path / "spec.yaml"),
        "--out",
        str(tmp_path / "o"),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/m.db",
        *flags,
        timeout=QUICK,
    )
    assert time.monotonic() - start < QUICK
    return proc


def _refused_quickly(proc, tmp_path, *needles: str) -> None:
    _rejected(proc, tmp_path, *needles)
    assert len(proc.stderr.rstrip().splitlines()[-1]) < 500, proc.stderr[-600:]


def _dataset(**fields) -> dict:
    return {**SPEC, "dataset": fields}


@pytest.mark.parametrize(
    "spec, needles",
    [
        (_with("dataset.window", 10**9), ["dataset.window: expected an integer from 1 to 10000, got 1000000000"]),
        (_with("dataset.horizon", 10**6), ["dataset.horizon: expected an integer from 1 to 10000, got 1000000"]),
        (
            _dataset(name="sine", window=4, length=10**9),
            ["dataset.length: expected an integer from 1 to 1000000, got 1000000000"],
        ),
        (_dataset(name="adding", seq_len=10**6), ["dataset.seq_len: expected an integer from 2 to 10000"]),
        (
            _dataset(name="adding", length=100_000, seq_len=1000),
            ["dataset:", "`length` x `seq_len`", "at most 10000000", "got 100000 x 1000"],
        ),
        (_dataset(csv="d" * 5000 + ".csv", target="y"), ["dataset.csv", "at most 4096 characters"]),
        (_with("space.units", [8, 10**9]), ["space.units: a layer has at most 4096 units, got 1000000000"]),
        (_with("space.units", {"low": 8, "high": 10**6}), ["space.units.high: expected an integer from 1 to 4096"]),
        (_with("space.units", {"choices": [8, 10**6]}), ["space.units.choices", "at most 4096 units, got 1000000"]),
        (_with("space.units", {"params": 10**12}), ["space.units.params", "from 16 to 1000000000"]),
        (_with("space.units", list(range(1, 1001))), ["space.units: give at most 256 units choices, got 1000"]),
        (_with("space.batch_size", [32, 10**7]), ["space.batch_size: a batch holds 1 to 65536 samples"]),
        (_with("trials_per_depth", 10**9), ["trials_per_depth: expected an integer from 1 to 100000, got 1000000000"]),
        (_with("train.epochs", 10**9), ["train.epochs: expected an integer from 1 to 100000, got 1000000000"]),
        (_with("train.batch_size", 10**7), ["train.batch_size: expected an integer from 1 to 65536, got 10000000"]),
        (_with("train.checkpoint_every", 10**9), ["train.checkpoint_every: expected an integer from 0 to 100000"]),
        (_with("depths", list(range(1, 41))), ["depths: a depth must lie in 1..32, got 33"]),
        (_with("evaluation.max_seeds", 10**6), ["evaluation.max_seeds: expected an integer from 2 to 1000"]),
        (_with("sampler.n_startup_trials", 10**9), ["sampler.n_startup_trials: expected an integer from 0 to 100000"]),
        (_with("resources.max_concurrent", 10**9), ["resources.max_concurrent: expected an integer from 1 to 10000"]),
        (_with("baseline.units", 10**6), ["baseline.units: expected an integer from 1 to 4096, got 1000000"]),
        (_with("storage", "sqlite:///" + "s" * 10_000), ["storage: expected a string of at most 4096 characters"]),
        (_with("name", "n" * 200_000), ["name: use letters, digits", "got 'nnnn", "..."]),
        (_with("dataset.name", "q" * 200_000), ["dataset.name: unknown dataset 'qqqq", "...; known datasets: sine"]),
        (
            _dataset(name="sine", window=10_000, length=1_000_000),
            ["dataset 'sine': window 10000 over 1000000 rows makes", "over the 500000000 a prepared set may hold"],
        ),
    ],
    ids=[
        "window",
        "horizon",
        "length",
        "seq-len",
        "adding-steps",
        "csv-path",
        "units-list",
        "units-range",
        "units-choices",
        "units-params",
        "units-many-choices",
        "batch-size-choices",
        "trials",
        "epochs",
        "batch-size",
        "checkpoint-every",
        "depths",
        "max-seeds",
        "startup-trials",
        "max-concurrent",
        "baseline-units",
        "storage-url",
        "huge-name",
        "huge-dataset-name",
        "windows-too-large",
    ],
)
def test_a_size_past_its_limit_exits_2_quickly_naming_the_field_and_the_limit(cli, tmp_path, spec, needles):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    _refused_quickly(_search_quickly(cli, tmp_path), tmp_path, *needles)


def test_too_many_epochs_on_the_command_line_exits_2_quickly(cli, tmp_path):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    proc = _search_quickly(cli, tmp_path, "--epochs", "1000000000")
    _refused_quickly(proc, tmp_path, "train.epochs: expected an integer from 1 to 100000, got 1000000000")


_REST = "depths: [1, 2]\ntrials_per_depth: 2\ntrain: {epochs: 1}\n"


@pytest.mark.parametrize(
    "text, needles",
    [
        (
            yaml_bomb("a") + _REST + "dataset: {name: sine, window: 4}\nname: *a9\n",
            ["too many YAML nodes once aliases are expanded (more than 20000)"],
        ),
        (
            yaml_bomb("b") + _REST + "name: bad-input\ndataset: {name: sine, window: 4, source: *b9}\n",
            ["too many YAML nodes once aliases are expanded (more than 20000)"],
        ),
        (
            "m0: &m0 {x: 1, y: 2}\n"
            + "".join(f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}\n" for i in range(1, 9))
            + _REST
            + "name: bad-input\ndataset: {name: sine, window: 4}\n",
            ["too many YAML nodes once aliases are expanded (more than 20000)"],
        ),
        ("name: &n [*n]\n" + _REST, ["a YAML alias refers to a node that contains it"]),
        ("name: [" + ", ".join(["x"] * 300_000) + "]\n" + _REST, ["too many YAML nodes (more than 20000)"]),
    ],
    ids=["alias-bomb-name", "alias-bomb-dataset-source", "merge-key-bomb", "self-alias", "too-many-nodes"],
)
def test_a_yaml_bomb_exits_2_quickly_with_little_memory(cli, tmp_path, text, needles):
    (tmp_path / "spec.yaml").write_text(text)
    _refused_quickly(_search_quickly(cli, tmp_path), tmp_path, str(tmp_path / "spec.yaml"), *needles)


def test_a_spec_file_over_1_mib_exits_2_without_being_read(cli, tmp_path):
    with open(tmp_path / "spec.yaml", "wb") as handle:
        handle.truncate(50 << 20)  # sparse: takes no disk space
    proc = _search_quickly(cli, tmp_path)
    _refused_quickly(
        proc, tmp_path, str(tmp_path / "spec.yaml"), "file is 52428800 bytes (50 MiB)", "over the 1 MiB limit"
    )


def test_a_csv_file_over_2_gib_exits_2_without_being_read(cli, tmp_path):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(CSV_SPEC))
    with open(tmp_path / "d.csv", "wb") as handle:
        handle.truncate(3 << 30)  # sparse: takes no disk space
    proc = _search_quickly(cli, tmp_path)
    _refused_quickly(proc, tmp_path, str(tmp_path / "d.csv"), "file is 3221225472 bytes (3 GiB)", "over the 2 GiB")


def test_a_huge_csv_cell_is_cut_in_the_message(cli, tmp_path):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(CSV_SPEC))
    rows = "".join(f"{i},{i / 10}\n" for i in range(40))
    (tmp_path / "d.csv").write_text("t,y\n" + rows + "40," + "z" * 5_000_000 + "\n")
    proc = _search_quickly(cli, tmp_path)
    _refused_quickly(proc, tmp_path, str(tmp_path / "d.csv"), "column 'y' has a non-numeric value 'zzz", "line 42")


def test_a_training_config_past_a_limit_exits_2_quickly(cli, tmp_path):
    config = {"dataset": {"name": "sine", "window": 4}, "model": {"units": [8, 10**9]}, "train": {"lr": 0.01}}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    start = time.monotonic()
    proc = cli("train", str(tmp_path / "train.yaml"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db", timeout=QUICK)
    assert time.monotonic() - start < QUICK
    _refused_quickly(proc, tmp_path, "model.units: a layer has at most 4096 units, got 1000000000")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.serial
def test_unreachable_tracking_server_exits_3_within_seconds(cli, tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    start = time.monotonic()
    proc = cli("search", str(path), "--out", str(tmp_path / "o"), "--tracking-uri", uri, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.rstrip().splitlines()[-1].startswith("error: "), proc.stderr
    assert uri in proc.stderr
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert not (tmp_path / "o").exists()


# --- inputs that were once taken silently, or hung: each stops at once in one line ----------------------------------

_SPEC_TEXT = yaml.safe_dump(SPEC)


@pytest.mark.parametrize(
    "text, needles",
    [
        (_SPEC_TEXT + "name: again\n", ["key 'name' appears twice in one mapping (lines", "and"]),
        (_SPEC_TEXT.replace("- 1\n- 2\n", "- true\n- 2\n"), ["depths.0: expected a number, got true"]),
        (_SPEC_TEXT + "seed: -1\n", ["seed: expected an integer from 0 to 4000000, got -1"]),
        (_SPEC_TEXT + f"seed: {2**70}\n", ["seed: expected an integer from 0 to 4000000", str(2**70)]),
    ],
    ids=["duplicate-key", "boolean-depth", "seed-negative", "seed-huge"],
)
def test_a_spec_value_that_was_read_silently_is_refused(cli, tmp_path, text, needles):
    (tmp_path / "spec.yaml").write_text(text)
    _refused_quickly(_search_quickly(cli, tmp_path), tmp_path, str(tmp_path / "spec.yaml"), *needles)


def test_a_spec_that_is_a_named_pipe_nobody_writes_is_refused_without_waiting(cli, tmp_path):
    os.mkfifo(tmp_path / "spec.yaml")
    _refused_quickly(_search_quickly(cli, tmp_path), tmp_path, "a named pipe (FIFO) that no program writes to")


def _header_csv(columns: int) -> str:
    return ",".join(f"c{i}" for i in range(columns - 1)) + ",y\n" + ("0," * (columns - 1) + "1\n") * 3


@pytest.mark.parametrize(
    "content, needles",
    [
        (_header_csv(1_000_000), ["the header has over 10000 columns, the most a CSV file may have"]),
        ("t,y\n" + "".join(f"{i},5\n" for i in range(60)), ["target column 'y' is constant (5 on every line)"]),
        (
            "t,y\n" + "".join(f"{i},{(-1) ** i * 1.5e308}\n" for i in range(60)),
            ["column 'y' has 1.5e+308 at line 2", "beyond the ±3.4e+38 that float32"],
        ),
    ],
    ids=["a-million-columns", "constant", "huge-values"],
)
def test_a_csv_that_would_hang_or_mean_nothing_exits_2_quickly(cli, tmp_path, content, needles):
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(CSV_SPEC))
    (tmp_path / "d.csv").write_text(content)
    _refused_quickly(_search_quickly(cli, tmp_path), tmp_path, str(tmp_path / "d.csv"), *needles)


def test_a_classification_csv_of_one_class_exits_2(cli, tmp_path):
    dataset = {"csv": "d.csv", "task": "classification", "target": "label", "sequence": "seq"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**SPEC, "dataset": dataset}))
    rows = "".join(f"{i // 5},{i / 10},a\n" for i in range(100))
    (tmp_path / "d.csv").write_text("seq,x,label\n" + rows)
    proc = _search_quickly(cli, tmp_path)
    _refused_quickly(proc, tmp_path, "column 'label' holds one class ('a'): classification needs at least two")


# --- refusals before Ray: each is one line with its exit status within seconds, and Ray never starts --------------

REFUSAL_SECONDS = 5.0


def _refused_before_ray(cli, tmp_path, *args: str, status: int, env: dict | None = None) -> str:
    """Runs `stacktune ARGS` with Ray's temp folder in tmp_path; asserts one `error:` line, `status`, an answer within
    REFUSAL_SECONDS and no Ray session made (nothing in that folder); returns the line."""
    ray_tmp = tmp_path / "ray-tmp"
    ray_tmp.mkdir(exist_ok=True)
    start = time.monotonic()
    proc = cli(*args, env={"RAY_TMPDIR": str(ray_tmp), **(env or {})}, timeout=60)
    elapsed = time.monotonic() - start
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == status, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert "finished trials are kept" not in lines[0] and "--resume" not in lines[0]
    assert not any(ray_tmp.iterdir()), "Ray was started"
    assert elapsed <= REFUSAL_SECONDS, f"took {elapsed:.1f} s"
    return lines[0]


def _spec_file(tmp_path, **changes) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return str(path)


def _search_args(tmp_path, *flags: str, spec: str | None = None) -> tuple[str, ...]:
    return (
        "search",
        spec or _spec_file(tmp_path),
        "--tracking-uri",
        f"sqlite:///{tmp_path}/m.db",
        *(flags if "--out" in flags else ("--out", str(tmp_path / "o"), *flags)),
    )


@pytest.fixture
def tmpfs(tmp_path):
    """`tmpfs(options)`: a small tmpfs of the test's own mounted with `options` (it needs root, as CI has)."""
    mounted = []

    def mount(options: str):
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if made.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _hold_folder_lock(tmp_path) -> subprocess.Popen:
    """Another process holding search 'bad-input''s lock beside tmp_path/o, as a running search does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "o" / ".bad-input.lock")], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


_HOLD = """
import fcntl, json, os, socket, sys, time
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode(), 0)
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.serial
@pytest.mark.parametrize("resume", [False, True], ids=["new", "resume"])
def test_a_second_search_of_a_running_name_is_refused_before_ray(cli, tmp_path, resume):
    holder = _hold_folder_lock(tmp_path)
    try:
        flags = ["--resume"] if resume else []
        line = _refused_before_ray(cli, tmp_path, *_search_args(tmp_path, *flags), status=2)
    finally:
        holder.kill()
        holder.wait()
    assert f"search 'bad-input' is already running (pid {holder.pid} on " in line


@pytest.mark.serial
def test_a_running_name_locked_in_the_study_database_is_refused_before_ray(cli, tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path}/studies.db"
    lock = optuna.create_study(study_name="bad-input.lock", storage=url)  # as a live search on another host holds it
    for key, value in {"pid": 4242, "host": "head-1", "since": "2026-12-01 10:00:00", "heartbeat": time.time()}.items():
        lock.set_user_attr(key, value)
    line = _refused_before_ray(cli, tmp_path, *_search_args(tmp_path, spec=_spec_file(tmp_path, storage=url)), status=2)
    assert "search 'bad-input' is already running (pid 4242 on head-1, since 2026-12-01 10:00:00" in line


def _another_search(tmp_path) -> str:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / ".stacktune-search").write_text("search keep\n")
    return str(keep)


def _lock_folder(tmp_path) -> str:
    (tmp_path / "o" / ".bad-input.lock").mkdir(parents=True)
    return str(tmp_path / "o")


def _a_file(tmp_path) -> str:
    (tmp_path / "a-file").write_text("not a folder\n")
    return str(tmp_path / "a-file")


@pytest.mark.serial
@pytest.mark.parametrize(
    "flag, where, status, needles",
    [
        ("--out", _a_file, 2, ["a-file is not a folder"]),
        ("--out", lambda tmp_path: "/dev/null", 2, ["--out /dev/null: /dev/null is not a folder"]),
        ("--out", _another_search, 2, ["is the output folder of search 'keep'"]),
        ("--out", _lock_folder, 2, ["cannot use --out", "Is a directory", ".bad-input.lock"]),
        ("--storage-path", _a_file, 2, ["--storage-path", "a-file is not a folder"]),
        (
            "--storage-path",
            lambda tmp_path: "/dev/null/x",
            2,
            ["--storage-path /dev/null/x: /dev/null is not a folder"],
        ),
    ],
    ids=[
        "out-a-file",
        "out-dev-null",
        "out-inside-a-search",
        "lock-path-a-folder",
        "storage-path-a-file",
        "storage-path-under-dev-null",
    ],
)
def test_a_path_a_search_cannot_use_is_refused_before_ray(cli, tmp_path, flag, where, status, needles):
    line = _refused_before_ray(cli, tmp_path, *_search_args(tmp_path, flag, where(tmp_path)), status=status)
    for needle in needles:
        assert needle in line, line


@pytest.mark.serial
@pytest.mark.parametrize("flag", ["--out", "--storage-path"])
def test_a_read_only_disk_is_refused_with_exit_4_before_ray(cli, tmp_path, tmpfs, flag):
    disk = tmpfs("size=64k,ro")
    line = _refused_before_ray(cli, tmp_path, *_search_args(tmp_path, flag, str(disk / "x")), status=4)
    assert f"{disk} is on a read-only disk; nothing was written" in line


@pytest.mark.serial
def test_a_full_disk_is_refused_with_exit_4_before_ray(cli, tmp_path, tmpfs):
    disk = tmpfs("size=64k")
    with open(disk / "filler", "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)
    line = _refused_before_ray(cli, tmp_path, *_search_args(tmp_path, "--out", str(disk / "runs")), status=4)
    assert f"the disk under {disk} is full" in line and "nothing was written: free some space" in line


@pytest.mark.serial
def test_a_study_database_that_refuses_is_refused_before_ray(cli, tmp_path):
    url = f"postgresql://ann:s3cretpw@127.0.0.1:{_free_port()}/db"
    line = _refused_before_ray(cli, tmp_path, *_search_args(tmp_path, spec=_spec_file(tmp_path, storage=url)), status=3)
    assert "cannot open the Optuna storage in `storage:`" in line and "s3cretpw" not in line


@pytest.mark.serial
@pytest.mark.parametrize(
    "flags, env, needles",
    [
        (["--name", "nl\n"], {}, ["name: use letters, digits", "got 'nl\\n'"]),
        (["--tracking-uri", "sqlite:///m.db\n"], {}, ["holds a line break or another control character"]),
        (["--tracking-uri", "sqlite:///{tmp}"], {}, ["is a folder, not a SQLite database file"]),
        ([], {"MLFLOW_TRACKING_URI": "::::"}, ["tracking URI '::::': not a URI"]),
        ([], {"RAY_TMPDIR": "/dev/null/ray"}, ["$RAY_TMPDIR '/dev/null/ray': not a folder this process can write in"]),
    ],
    ids=[
        "name-ending-in-newline",
        "tracking-uri-ending-in-newline",
        "sqlite-a-folder",
        "tracking-uri-garbage",
        "ray-tmpdir-unusable",
    ],
)
def test_a_name_uri_or_setting_that_cannot_work_is_refused_before_ray(cli, tmp_path, flags, env, needles):
    flags = [f.format(tmp=tmp_path) for f in flags]
    args = ("search", _spec_file(tmp_path), "--out", str(tmp_path / "o"), *flags)
    if "--tracking-uri" not in flags and "MLFLOW_TRACKING_URI" not in env:
        args += ("--tracking-uri", f"sqlite:///{tmp_path}/m.db")
    start = time.monotonic()
    # Not through `cli`, which leaves out the caller's MLFLOW_TRACKING_URI.
    proc = subprocess.run(
        [sys.executable, "-m", "stacktune.search.cli", *args],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - start <= REFUSAL_SECONDS
    assert proc.returncode == 2, proc.stderr[-3000:]
    _one_line(proc, *needles)
    assert not (tmp_path / "o").exists()


def _one_line(proc, *needles: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_v_after_the_subcommand_shows_the_debug_messages_before_a_refusal(cli, tmp_path):
    proc = cli("search", _spec_file(tmp_path), "--out", str(tmp_path / "o"), "--tracking-uri", "bogus://x", "-v")
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: tracking URI bogus://x")
    assert any(line.startswith("output folder: ") for line in lines[:-1]), proc.stderr
