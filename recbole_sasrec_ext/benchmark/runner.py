"""Run a suite: every run in its own subprocess with a timeout, results saved after each, resumable.

The runner never imports recbole or torch. A single run is
``<command prefix> --model M --dataset D --seed=S --key=value ...`` with the output folder as
working directory; the prefix is ``python -m recbole_sasrec_ext`` unless a caller or the
environment variable ``RECBOLE_SASREC_EXT_RUN_CMD`` (split like a shell line) gives another (the
tests use a fake).
The run's last stdout line must be a run summary (:class:`~recbole_sasrec_ext.contract.RunSummary`
as JSON); the runner reads it only through :mod:`recbole_sasrec_ext.contract.summary`.

Every run keeps its checkpoints in its own folder, ``checkpoints/<model>-<data set>-<seed>-<hash>/``
of the output folder (``--checkpoint_dir``). A run that did not finish (killed, timed out, the
machine went down) continues from its newest checkpoint when the suite is started again
(``--resume``): the checkpoint holds the weights, the optimiser, the early-stopping state and the
random number generators, so the resumed run ends exactly as an uninterrupted one would.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from recbole_sasrec_ext.benchmark import results
from recbole_sasrec_ext.benchmark.results import Status
from recbole_sasrec_ext.benchmark.suite import RunSpec, Suite
from recbole_sasrec_ext.common.paths import PACKAGE_PARENT  # so the child imports this same package
from recbole_sasrec_ext.contract.summary import RunSummary, StoppedBy, SummaryError

RUN_CMD_ENV = "RECBOLE_SASREC_EXT_RUN_CMD"
MAX_ERROR_CHARS = 500
CHECKPOINTS_DIR = "checkpoints"  # one folder per run inside the output folder
#: What the plugin's CLI says when ``--resume`` names a checkpoint whose training had ended.
_FINISHED_MARK = "this run finished"
_KILL_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_POLL_S = 0.2  # how often parallel runs are checked


@dataclass(frozen=True)
class RunOutcome:
    """What one subprocess run produced."""

    status: Status
    error: str
    result: RunSummary | None
    seconds: float
    timed_out: bool = False

    @property
    def stopped_by(self) -> str:
        """``timeout`` for a run the runner killed, else what the run reports (or "")."""
        if self.timed_out:
            return StoppedBy.TIMEOUT.value
        return (self.result.stopped_by if self.result else None) or ""


@dataclass(frozen=True)
class SuiteSummary:
    """What ``run_suite`` did, and the rows and histories it left in the output folder."""

    planned: int
    ran: int
    skipped: int
    failed: int
    stopped_early: bool
    rows: tuple[results.Row, ...] = ()  # every row of results.csv as written (earlier runs too)
    histories: tuple[results.HistoryEntry, ...] = ()  # every entry of histories.jsonl as written


def default_command_prefix() -> list[str]:
    """``$RECBOLE_SASREC_EXT_RUN_CMD`` split like a shell line, else
    ``python -m recbole_sasrec_ext``."""
    raw = os.environ.get(RUN_CMD_ENV, "").strip()
    return shlex.split(raw) if raw else [sys.executable, "-m", "recbole_sasrec_ext"]


def command_text(command: Sequence[str]) -> str:
    """A shell line for ``command`` that reads well with Python literals (double quotes if
    possible)."""
    parts = []
    for arg in command:
        quoted = shlex.quote(arg)
        if quoted != arg and not any(c in arg for c in '"$`\\!'):
            quoted = f'"{arg}"'
        parts.append(quoted)
    return " ".join(parts)


def cpu_description() -> str:
    """CPU model (from /proc/cpuinfo on Linux) and the number of logical cores."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model} ({os.cpu_count()} cores)"


def hardware_description(cpu: str, result: RunSummary | None) -> str:
    """The CPU, plus the GPU the run reports (``gpu``: its name, else a ``device`` like
    ``cuda:0``)."""
    if result is None:
        return cpu
    gpu = result.gpu or (result.device if result.device.startswith("cuda") else None)
    return f"{cpu}; GPU: {gpu}" if gpu else cpu


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def changed_settings(
    specs: Sequence[RunSpec], rows: dict[results.RunKey, results.Row]
) -> dict[results.RunKey, tuple[str, str]]:
    """Finished runs whose row's ``settings_hash`` is not what its command resolves to now:
    run key -> (the row's hash, today's). Rows without a hash (made before runs reported one) and
    commands whose config cannot be built here are kept as they are."""
    hashed = [spec for spec in specs if rows[spec.key].get("settings_hash")]
    if not hashed:
        return {}
    probe = subprocess.run(
        [sys.executable, "-m", "recbole_sasrec_ext.benchmark.settings_probe"],
        input=json.dumps([spec.args() for spec in hashed]), capture_output=True, text=True,
        env=_child_env(), check=False,
    )
    lines = probe.stdout.strip().splitlines()
    try:
        now = json.loads(lines[-1]) if probe.returncode == 0 and lines else None
    except json.JSONDecodeError:
        now = None
    if not isinstance(now, list) or len(now) != len(hashed):
        return {}  # the probe failed: skip finished rows as before
    return {spec.key: (rows[spec.key]["settings_hash"], new) for spec, new in zip(hashed, now)
            if new and new != rows[spec.key]["settings_hash"]}


def run_one(
    spec: RunSpec, command_prefix: Sequence[str], out_dir: Path, timeout_s: float
) -> RunOutcome:
    """Run one spec in a fresh subprocess; its stdout, then its stderr, go to ``logs/<run>.log``.

    A timeout, a non-zero exit, a signal (e.g. the out-of-memory killer) or a last stdout line that
    is not a run summary gives a ``failed`` outcome whose error is one line. A run with a
    checkpoint in its folder (an earlier attempt that did not finish) resumes from the newest one.
    """
    checkpoints = out_dir / CHECKPOINTS_DIR / spec.run_name
    newest = newest_checkpoint(checkpoints)
    if newest is not None:
        outcome = _run_process(spec, command_prefix, out_dir, timeout_s, checkpoints, newest)
        if _FINISHED_MARK not in outcome.error:
            return outcome
        # killed after training ended, before the summary was read: train again from the start
        shutil.rmtree(checkpoints)
    return _run_process(spec, command_prefix, out_dir, timeout_s, checkpoints, None)


def newest_checkpoint(folder: Path) -> Path | None:
    """The most recently written ``*.pth`` in ``folder`` (None if there is none)."""
    found = sorted(folder.glob("*.pth"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return found[-1] if found else None


def _run_process(
    spec: RunSpec, command_prefix: Sequence[str], out_dir: Path, timeout_s: float,
    checkpoints: Path, resume: Path | None,
) -> RunOutcome:
    started = _start_process(spec, command_prefix, out_dir, checkpoints, resume, spec.threads)
    try:
        returncode = started.process.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
        returncode = _kill_group(started.process)
    except BaseException:  # e.g. Ctrl-C: do not leave the run behind
        _kill_group(started.process)
        started.close()
        raise
    return started.finish(returncode, timed_out, timeout_s)


@dataclass
class _Started:
    """A run's subprocess and its log files, from start to :meth:`finish`."""

    spec: RunSpec
    process: subprocess.Popen
    log: object
    err: object
    stdout_start: int
    start: float
    checkpoints: Path
    resume: Path | None

    def finish(self, returncode: int, timed_out: bool, timeout_s: float) -> RunOutcome:
        """Read its output and close its files: the outcome."""
        seconds = time.monotonic() - self.start
        self.log.seek(self.stdout_start)
        stdout = self.log.read().decode("utf-8", errors="replace")
        self.err.seek(0)
        stderr = self.err.read().decode("utf-8", errors="replace")
        self.log.seek(0, os.SEEK_END)
        self.log.write(f"\n----- stderr (exit code {returncode}) -----\n{stderr}".encode())
        self.close()
        return _outcome(stdout, stderr, returncode, timed_out, timeout_s, seconds)

    def close(self) -> None:
        self.log.close()
        self.err.close()


def _start_process(
    spec: RunSpec, command_prefix: Sequence[str], out_dir: Path, checkpoints: Path,
    resume: Path | None, threads: int | None = None,
) -> _Started:
    """Start one run (``threads``: its OpenMP/MKL thread count, unless the caller set one)."""
    command = [*command_prefix, *spec.args(), f"--checkpoint_dir={checkpoints}"]
    if resume is not None:
        command.append(f"--resume={resume}")
    log_path = out_dir / results.LOGS_DIR / spec.log_name
    env = _child_env()
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(threads))
    # a resumed run's log follows the interrupted one's
    log = log_path.open("a+b" if resume else "w+b")
    err = tempfile.TemporaryFile("w+b")
    log.write(f"$ {command_text(command)}\n# cwd: {out_dir}\n".encode())
    log.flush()
    stdout_start = log.tell()
    process = subprocess.Popen(
        command,
        cwd=out_dir,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=err,
        env=env,
        start_new_session=True,  # one process group: a timeout kills its workers too
        # the run dies with the runner (the runner starts no threads)
        preexec_fn=_die_with_parent_hook(),  # noqa: PLW1509
    )
    return _Started(spec, process, log, err, stdout_start, time.monotonic(), checkpoints, resume)


def _child_env() -> dict[str, str]:
    """The environment of a child process: this package, the caller's PYTHONPATH, then the
    caller's folder (the run's is the output folder), so that a suite's model class given by
    import path imports in the child as it did here."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", ""), os.getcwd()) if p
    )
    return env


def _die_with_parent_hook():
    """A ``preexec_fn`` that asks Linux to SIGKILL the child when the runner dies
    (``prctl(PR_SET_PDEATHSIG)``), or ``None`` where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the runner died before the prctl took effect
            os._exit(1)

    return hook


def _kill_group(process: subprocess.Popen) -> int:
    for sig, wait_s in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


def _outcome(
    stdout: str, stderr: str, returncode: int, timed_out: bool, timeout_s: float, seconds: float
) -> RunOutcome:
    err_lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # The run's own one-line message; warnings may follow it or stand alone.
    error_line = next((line for line in reversed(err_lines) if line.startswith("error:")), "")

    def failed(reason: str) -> RunOutcome:
        text = f"{reason}: {error_line}" if error_line and error_line != reason else reason
        error = " ".join(text.split())[:MAX_ERROR_CHARS]
        return RunOutcome(Status.FAILED, error, None, seconds, timed_out)

    if timed_out:
        return failed(f"timeout after {timeout_s:g} s")
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else ""
        hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return failed(f"killed by signal {-returncode} {name}{hint}".replace("  ", " "))
    if returncode != 0:
        return failed(error_line or (err_lines[-1] if err_lines else f"exit code {returncode}"))
    out_lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        decoded = json.loads(out_lines[-1]) if out_lines else None
    except json.JSONDecodeError:
        decoded = None
    if not isinstance(decoded, dict):
        return failed("exit code 0 but the last stdout line is not a JSON object")
    try:
        result = RunSummary.from_dict(decoded)
    except SummaryError as exc:
        return failed(str(exc))
    return RunOutcome(Status.OK, "", result, seconds)


def run_suite(
    suite: Suite,
    out_dir: Path,
    *,
    seeds: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    max_runs: int | None = None,
    command_prefix: Sequence[str] | None = None,
    data_root: Path | None = None,
    command_line: str = "",
    stream: TextIO | None = None,
    jobs: int = 1,
    validation_only: bool = False,
) -> SuiteSummary:
    """Run every planned run not yet in ``results.csv`` with status ok; save after each run.

    Parameters
    ----------
    suite
        The validated suite.
    out_dir
        Output folder: results.csv, histories.jsonl, suite.json, logs/; the runs' working folder.
    seeds, models
        Restrict or replace the suite's seeds and models.
    max_runs
        Start at most this many runs (skipped ones do not count); rerun to continue.
    command_prefix
        The single-run command before ``--model``; default ``default_command_prefix()``.
    data_root
        Base of a relative ``data_path`` (default: the repository root).
    command_line
        The command used, for the report's header.
    stream
        Where progress lines go (default stderr).
    jobs
        Places for runs at the same time (each run in its own subprocess; see
        :func:`_run_parallel`): a run takes its suite's ``threads`` places (1 when unset) times
        its ``nproc`` and each of its processes gets ``threads`` OpenMP/MKL threads, unless the
        environment sets a number. With one job a run's processes get its suite's ``threads``
        (the caller's setting when unset).
        Rows are written as runs end, so results.csv's order may differ from the plan's; the
        rows themselves are the same as with one job.
    validation_only
        Each finished run's line shows its best validation metrics, not its test metrics (a
        search, whose choice must not be read off the test set).
    """
    out_dir = out_dir.resolve()
    with results.folder_lock(out_dir):  # two runners on one folder would lose rows
        return _run_suite_locked(suite, out_dir, seeds, models, max_runs, command_prefix,
                                 data_root, command_line, stream, jobs, validation_only)


def _run_suite_locked(
    suite, out_dir, seeds, models, max_runs, command_prefix, data_root, command_line, stream,
    jobs=1, validation_only=False,
) -> SuiteSummary:
    stream = stream or sys.stderr
    prefix = list(command_prefix) if command_prefix else default_command_prefix()
    plan = suite.runs(seeds=seeds, models=models, data_root=data_root)
    (out_dir / results.LOGS_DIR).mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / results.CSV_NAME
    histories_path = out_dir / results.HISTORIES_NAME
    rows = results.read_rows(csv_path)
    histories = results.read_histories(histories_path)
    done = {
        results.row_key(r): r
        for r in rows
        if r["status"] == Status.OK.value and results.is_complete(r)
    }
    changed = changed_settings([spec for spec in plan if spec.key in done], done)
    _write_suite_meta(out_dir, suite, command_line)
    _warn_missing_data(plan, stream)

    cpu = cpu_description()
    start = time.monotonic()
    skipped = 0
    stopped = False
    todo: list[tuple[str, RunSpec]] = []  # (progress label, spec) of the runs to start
    for index, spec in enumerate(plan, start=1):
        where = f"[{index}/{len(plan)}] {spec.model} on {spec.dataset} seed {spec.seed}"
        if spec.key in done and spec.key not in changed:
            skipped += 1
            print(f"{where}: already in {results.CSV_NAME}, skipped", file=stream, flush=True)
            continue
        if max_runs is not None and len(todo) >= max_runs:
            stopped = True
            break
        todo.append((where, spec))
    failed = 0

    def begin(where: str, spec: RunSpec, left: int) -> None:
        if spec.key in changed:
            old, new = changed[spec.key]
            print(f"{where}: its row was made with other settings (settings hash {old}, now "
                  f"{new}: a default changed since); running it again", file=stream, flush=True)
            shutil.rmtree(out_dir / CHECKPOINTS_DIR / spec.run_name, ignore_errors=True)
        elapsed = dt.timedelta(seconds=int(time.monotonic() - start))
        print(f"{where} (elapsed {elapsed}, {left} left)", file=stream, flush=True)

    def record(where: str, spec: RunSpec, outcome: RunOutcome) -> None:
        nonlocal failed
        failed += outcome.status is Status.FAILED
        row = results.make_row(
            model=spec.model,
            dataset=spec.dataset,
            seed=spec.seed,
            protocol=spec.protocol,
            config_hash=spec.config_hash,
            overrides=spec.overrides,
            status=outcome.status,
            error=outcome.error,
            result=outcome.result,
            hardware=hardware_description(cpu, outcome.result),
            date=now_iso(),
            log=f"{results.LOGS_DIR}/{spec.log_name}",
            profile=spec.profile,
            stopped_by=outcome.stopped_by,
            per_user=_per_user_path(out_dir, spec, outcome),
        )
        # a finished run replaces its rows made with other suite settings (e.g. a search's choice)
        stale_rows = results.superseded(rows, row) if outcome.status is Status.OK else []
        stale = {results.row_key(r) for r in stale_rows}
        rows[:] = [r for r in rows if results.row_key(r) not in stale]
        results.upsert_row(rows, row)
        results.write_rows(csv_path, rows)
        results.remove_per_user_files(out_dir, stale_rows, rows)
        if outcome.result is not None or stale:
            histories[:] = [h for h in histories if h.key not in stale]
            if outcome.result is not None:
                results.upsert_history(histories, results.history_entry(spec.key, outcome.result))
            results.write_histories(histories_path, histories)
        label = f"{where}: " if jobs > 1 else ""
        print(f"    {label}{_describe(outcome, validation_only)}", file=stream, flush=True)

    if jobs == 1:
        for number, (where, spec) in enumerate(todo, start=1):
            begin(where, spec, len(todo) - number)
            record(where, spec, run_one(spec, prefix, out_dir, suite.timeout_s))
    else:
        _run_parallel(todo, jobs, prefix, out_dir, suite.timeout_s, begin, record)
    ran = len(todo)
    return SuiteSummary(len(plan), ran, skipped, failed, stopped, tuple(rows), tuple(histories))


def _run_parallel(todo, jobs, prefix, out_dir, timeout_s, begin, record) -> None:
    """Keep up to ``jobs`` places busy; ``record`` each run as it ends. A run takes ``threads``
    places per training process (its suite's count, 1 when unset; times its ``nproc``; at most
    ``jobs``) and each of its processes gets ``threads`` OpenMP/MKL threads (what the places allow);
    runs that take more places start first, otherwise in plan order, and a run waits
    until its places are free. A run with a checkpoint resumes from it; one whose checkpoint had
    finished training starts again (as :func:`run_one`). On an exception (e.g. Ctrl-C) every
    running run is killed."""

    def places(spec: RunSpec) -> int:
        return min((spec.threads or 1) * spec.processes, jobs)

    def threads(spec: RunSpec) -> int:  # per process
        return max(1, places(spec) // spec.processes)

    queue = sorted(todo, key=lambda item: -places(item[1]))  # stable: plan order otherwise
    running: list[tuple[str, _Started]] = []
    try:
        while queue or running:
            while queue and sum(places(s.spec) for _, s in running) + places(queue[0][1]) <= jobs:
                where, spec = queue.pop(0)
                begin(where, spec, len(queue))
                checkpoints = out_dir / CHECKPOINTS_DIR / spec.run_name
                running.append((where, _start_process(spec, prefix, out_dir, checkpoints,
                                                      newest_checkpoint(checkpoints),
                                                      threads(spec))))
            time.sleep(_POLL_S)
            for item in list(running):
                where, started = item
                returncode = started.process.poll()
                timed_out = returncode is None and time.monotonic() - started.start > timeout_s
                if returncode is None and not timed_out:
                    continue
                if timed_out:
                    returncode = _kill_group(started.process)
                running.remove(item)
                outcome = started.finish(returncode, timed_out, timeout_s)
                if started.resume is not None and _FINISHED_MARK in outcome.error:
                    shutil.rmtree(started.checkpoints)  # trained to the end: train again
                    running.append((where, _start_process(started.spec, prefix, out_dir,
                                                          started.checkpoints, None,
                                                          threads(started.spec))))
                    continue
                record(where, started.spec, outcome)
    except BaseException:
        for _, started in running:
            _kill_group(started.process)
            started.close()
        raise


def _per_user_path(out_dir: Path, spec: RunSpec, outcome: RunOutcome) -> str:
    """The run's per-user metrics file relative to ``out_dir`` when the run wrote it, else ""."""
    written = outcome.result.per_user_file if outcome.result else None
    if not written or not (out_dir / spec.per_user_name).is_file():
        return ""
    return spec.per_user_name


def _describe(outcome: RunOutcome, validation_only: bool = False) -> str:
    """One line for a finished run: its test metrics, or its best validation ones."""
    if outcome.status is Status.FAILED:
        return f"failed after {outcome.seconds:.1f} s: {outcome.error}"
    result = outcome.result
    metrics = {}
    if result is not None:
        metrics = result.best_valid_result if validation_only else result.test_result
    shown = " ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in (metrics or {}).items()
    )
    if validation_only:
        epoch = result.best_epoch if result else None
        return f"ok in {outcome.seconds:.1f} s: best validation {shown} (epoch {epoch})"
    return f"ok in {outcome.seconds:.1f} s: {shown}"


def _write_suite_meta(out_dir: Path, suite: Suite, command_line: str) -> None:
    meta = results.read_meta(out_dir)
    commands = [c for c in meta.get("commands", []) if c != command_line] + [command_line]
    results.write_meta(
        out_dir,
        {
            "suite": suite.name,
            "source": str(suite.source),
            "description": suite.description,
            "notes": list(suite.notes),
            "timeout_s": suite.timeout_s,
            "profile": suite.profile,
            "models": list(dict.fromkeys([*meta.get("models", []), *suite.models])),
            "commands": [c for c in commands if c],
            "anchors": {d: dict(block) for d, block in suite.anchors.items()},
        },
    )


def _warn_missing_data(plan: list[RunSpec], stream: TextIO) -> None:
    """Warn once per data set whose atomic file is not under its ``data_path``."""
    seen = set()
    for spec in plan:
        data_path = spec.overrides.get("data_path")
        if not data_path or spec.dataset in seen:
            continue
        seen.add(spec.dataset)
        inter = Path(str(data_path)) / spec.dataset / f"{spec.dataset}.inter"
        if not inter.is_file():
            print(
                f"warning: {inter} does not exist: runs on {spec.dataset} will fail (convert it "
                "first: python -m recbole_sasrec_ext.convert, see datasets/README.md)",
                file=stream,
                flush=True,
            )
