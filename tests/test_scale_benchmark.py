"""The scale benchmark's watchdog and report (no timing is asserted)."""

import sys

from recbole_sasrec_ext.benchmark.scale import Measurement, merge, run_child, table


def test_a_child_above_the_memory_cap_is_killed():
    grow = ("import json, time; print(json.dumps({'stage': 'start'}), flush=True); "
            "x = bytearray(400 * 2**20); time.sleep(30)")
    run = run_child([sys.executable, "-c", grow], cap_mb=150, timeout=60)
    assert (run.killed and run.exit_code is None and run.sampled_peak_mb > 150
            and run.wall_seconds < 30)
    assert run.records == [{"stage": "start"}]
    assert not run.timed_out


def test_a_child_past_the_timeout_is_reported_as_timed_out_not_above_the_cap():
    slow = "import time; time.sleep(30)"
    run = run_child([sys.executable, "-c", slow], cap_mb=4096, timeout=1)
    assert run.killed and run.timed_out and run.exit_code is None and run.wall_seconds < 30
    plugin = Measurement(size=5_000_000, pipeline="plugin", dataset="syn-5M", users=34_623,
                         items=27_000, max_len=200, peak_rss_mb=None, sampled_peak_mb=1024.0,
                         killed=True, timed_out=True, cap_mb=8192.0, exit_code=None,
                         wall_seconds=61.0)
    line = table([plugin]).splitlines()[-1]
    assert "timed out at 1.00 GB resident | timed out after 61 s, during prepare" in line
    assert "killed above" not in line


def test_a_child_that_finishes_reports_its_records():
    ok = "import json; print(json.dumps({'stage': 'prepare', 'seconds': 1.0}))"
    run = run_child([sys.executable, "-c", ok], cap_mb=4096, timeout=60)
    assert (not run.killed and run.exit_code == 0
            and run.records == [{"stage": "prepare", "seconds": 1.0}])
    assert run.error is None


def test_a_child_that_fails_reports_its_last_error_line():
    bad = ("import sys; print('warning: noise', file=sys.stderr); "
           "raise MemoryError('cannot allocate 8 bytes')")
    run = run_child([sys.executable, "-c", bad], cap_mb=4096, timeout=60)
    assert (not run.killed and run.exit_code == 1
            and run.error == "MemoryError: cannot allocate 8 bytes")


def _m(pipeline, killed=False, code=0, error=None, **stages):
    ended = killed or code != 0
    return Measurement(size=5_000_000, pipeline=pipeline, dataset="syn-5M", users=34_623,
                       items=27_000,
                       max_len=200, peak_rss_mb=None if ended else 2048.0, sampled_peak_mb=7680.0,
                       killed=killed, cap_mb=8192.0, exit_code=None if killed else code,
                       wall_seconds=61.0, error=error, stages=stages)


def test_table_shows_killed_runs_and_extrapolated_epochs():
    plugin = _m("plugin", prepare={"seconds": 20.0, "cpu_seconds": 15.0},
                train={"epoch_seconds": 900.0, "epoch_cpu_seconds": 400.0, "extrapolated": True,
                       "steps": 100, "batches": 271},
                evaluate={"seconds": 95.0, "cpu_seconds": 50.0, "users": 34_623})
    rows = merge([_m("plugin")], [plugin, _m("recbole", killed=True)])
    assert [m.pipeline for m in rows] == ["plugin", "recbole"] and rows[0].stages  # newest kept
    line = table(rows).splitlines()[-1]
    assert line == ("| 5,000,000 | 34,623 | 27,000 | 200 | 2.00 GB | 20.0 (15.0) | 900.0 (400.0), "
                    "extrapolated from 100 of 271 batches | 95.0 (50.0), 34,623 users | "
                    "killed above 8.00 GB | killed after 61 s, during prepare |")


def test_table_shows_failed_allocations():
    error = ("RuntimeError: DefaultCPUAllocator: can't allocate memory: "
             "you tried to allocate 31778414400 bytes.")
    rows = [_m("plugin", code=1, error="ValueError: x", prepare={"seconds": 1.0}),
            _m("recbole", code=1, error=error)]
    line = table(rows).splitlines()[-1]
    assert line == ("| 5,000,000 | 34,623 | 27,000 | 200 | failed at 7.50 GB resident "
                    "| failed after 61 s, during model | – | – "
                    "| failed at 7.50 GB resident: could not allocate 29.6 GB "
                    "| failed after 61 s, during prepare |")
