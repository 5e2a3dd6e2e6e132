"""The scale benchmark's watchdog and report (no timing is asserted)."""

import sys

from recbole_sasrec_ext.benchmark.scale import Measurement, merge, run_child, table


def test_a_child_above_the_memory_cap_is_killed():
    grow = ("import json, time; print(json.dumps({'stage': 'start'}), flush=True); "
            "x = bytearray(400 * 2**20); time.sleep(30)")
    records, sampled, killed, code, wall = run_child([sys.executable, "-c", grow], cap_mb=150, timeout=60)
    assert killed and code is None and sampled > 150 and wall < 30
    assert records == [{"stage": "start"}]


def test_a_child_that_finishes_reports_its_records():
    ok = "import json; print(json.dumps({'stage': 'prepare', 'seconds': 1.0}))"
    records, _, killed, code, _ = run_child([sys.executable, "-c", ok], cap_mb=4096, timeout=60)
    assert not killed and code == 0 and records == [{"stage": "prepare", "seconds": 1.0}]


def _m(pipeline, killed=False, **stages):
    return Measurement(size=5_000_000, pipeline=pipeline, dataset="syn-5M", users=34_623, items=27_000,
                       max_len=200, peak_rss_mb=None if killed else 2048.0, sampled_peak_mb=2000.0,
                       killed=killed, cap_mb=8192.0, exit_code=None if killed else 0,
                       wall_seconds=61.0, stages=stages)


def test_table_shows_killed_runs_and_extrapolated_epochs():
    plugin = _m("plugin", prepare={"seconds": 20.0, "cpu_seconds": 15.0},
                train={"epoch_seconds": 900.0, "epoch_cpu_seconds": 400.0, "extrapolated": True,
                       "steps": 100, "batches": 271},
                evaluate={"seconds": 95.0, "cpu_seconds": 50.0, "users": 34_623})
    rows = merge([_m("plugin")], [plugin, _m("recbole", killed=True)])
    assert [m.pipeline for m in rows] == ["plugin", "recbole"] and rows[0].stages  # newest kept
    line = table(rows).splitlines()[-1]
    assert line == ("| 5,000,000 | 34,623 | 27,000 | 200 | 2.00 GB | 20.0 (15.0) | 900.0 (400.0), "
                    "extrapolated from 100 of 271 batches | 95.0 (50.0) (34,623) | "
                    "killed above 8.00 GB during data preparation | killed after 61 s |")
