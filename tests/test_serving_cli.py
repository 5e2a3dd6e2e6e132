"""Command lines over a bundle, RKSA's refusal, and loading a bundle with RecBole blocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT
from serving_bundle import train_tiny

from recbole_sasrec_ext.serving.export import RKSA_REFUSAL


def _cli(args, cwd, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "recbole_sasrec_ext", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, text=True, check=False, timeout=300)


def test_rksa_export_is_refused_with_exit_code_2(tmp_path):
    checkpoint = train_tiny(tmp_path, "RKSA")
    out = tmp_path / "bundle"
    proc = _cli(["export", "--checkpoint", str(checkpoint), "--out", str(out)], tmp_path)
    assert proc.returncode == 2 and proc.stdout == "" and not out.exists()
    assert proc.stderr.strip().splitlines() == [f"error: {checkpoint}: {RKSA_REFUSAL}"]


def test_export_into_a_non_empty_folder_is_refused(tiny_bundle, tmp_path):
    checkpoint, bundle = tiny_bundle
    proc = _cli(["export", "--checkpoint", str(checkpoint), "--out", str(bundle)], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: --out {bundle} exists and is not an empty folder"


def test_recommend_sequence_stdin_all_users_and_similar(tiny_bundle, tmp_path):
    _, bundle = tiny_bundle
    one = _cli(["recommend", "--bundle", str(bundle), "--sequence", "1,2,zz", "--k", "3"],
               tmp_path)
    assert one.returncode == 0, one.stderr
    row = json.loads(one.stdout)
    assert len(row["items"]) == 3 and row["unknown"] == ["zz"] and "1" not in row["items"]
    lines = "\n".join(['{"sequence": ["1", "2", "zz"], "k": 3}', "not json", '["5"]',
                       '{"sequence": [], "k": 2}', '{"sequence": ["1"], "k": 0}'])
    many = _cli(["recommend", "--bundle", str(bundle)], tmp_path, stdin=lines)
    rows = [json.loads(line) for line in many.stdout.splitlines()]
    assert many.returncode == 2 and len(rows) == 5 and rows[0] == row
    assert rows[1]["line"] == 2 and rows[1]["error"].startswith("stdin line 2: Expecting value")
    assert len(rows[2]["items"]) == 10 and rows[3]["fallback"] == "popular"
    assert rows[4] == {"line": 5, "error": "stdin line 5: 'k' must be in [1, 1000], got 0"}
    assert many.stderr.count("error: stdin line") == 2
    out = tmp_path / "all.jsonl"
    every = _cli(["recommend", "--bundle", str(bundle), "--all-users", "--out", str(out),
                  "--chunk", "16", "--backend", "torch"], tmp_path)
    assert every.returncode == 0, every.stderr
    users = [json.loads(line)["user"] for line in out.read_text().splitlines()]
    assert users == json.loads((bundle / "users.json").read_text())
    similar = _cli(["similar", "--bundle", str(bundle), "--item", "3", "--k", "4"], tmp_path)
    assert similar.returncode == 0 and len(json.loads(similar.stdout)["items"]) == 4
    bad = _cli(["similar", "--bundle", str(bundle), "--item", "zz"], tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: unknown item token: 'zz'"
    missing = _cli(["recommend", "--bundle", str(tmp_path / "no"), "--sequence", "1"], tmp_path)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == f"error: bundle not found: {tmp_path / 'no'}"


BLOCK_RECBOLE = textwrap.dedent("""
    import importlib.abc, json, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "recbole" or name.startswith("recbole."):
                raise ImportError("recbole is blocked in this test")
    sys.meta_path.insert(0, Block())
    from recbole_sasrec_ext import serving
    for backend in ("onnx", "torch"):
        rec = serving.load(sys.argv[1], backend)
        print(json.dumps(rec.recommend([["1", "2"], []], k=3)[0].to_dict()))
    assert not [m for m in sys.modules if m == "recbole" or m.startswith("recbole.")]
""")


def test_bundle_loads_and_recommends_without_recbole(tiny_bundle, tmp_path):
    _, bundle = tiny_bundle
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", BLOCK_RECBOLE, str(bundle)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    onnx_row, torch_row = (json.loads(line) for line in proc.stdout.splitlines())
    assert onnx_row["items"] == torch_row["items"] and len(onnx_row["items"]) == 3


def test_inference_benchmark_reports_every_runtime(tiny_bundle, tmp_path):
    from recbole_sasrec_ext.benchmark.inference import main

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "recbole_sasrec_ext.benchmark.inference", "--bundle",
         str(tiny_bundle[1]), "--batch-sizes", "8", "--clients", "2", "--seconds", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert [(r["backend"], r["users"]) for r in report["all_users"]] == [("onnx", 40),
                                                                         ("torch", 40)]
    assert report["parity"]["top10_differ"] == 0
    assert report["parity"]["max_abs_score_diff"] <= 1e-4
    assert report["server"]["errors"] == 0 and report["server"]["requests"] > 0
    assert main(["--bundle", str(tmp_path / "none")]) == 2


def test_all_users_to_parquet_and_json_lines(tiny_bundle, tmp_path):
    """--all-users --out: JSON lines by default, Parquet by the suffix (one row group per chunk);
    both hold the same recommendations."""
    import pyarrow.parquet as pq

    _, bundle = tiny_bundle
    rows = {}
    for name in ("all.jsonl", "all.parquet"):
        proc = _cli(["recommend", "--bundle", str(bundle), "--all-users", "--out",
                     str(tmp_path / name), "--chunk", "16", "--k", "5"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.startswith("40 users in ")
    jsonl = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    parquet = pq.ParquetFile(tmp_path / "all.parquet")
    assert parquet.metadata.num_row_groups == 3  # 16 + 16 + 8 users
    assert parquet.schema_arrow.names == ["user", "items", "scores", "note"]
    rows = parquet.read().to_pylist()
    assert [r["user"] for r in rows] == [r["user"] for r in jsonl]
    assert [r["items"] for r in rows] == [r["items"] for r in jsonl]
    for got, want in zip(rows, jsonl):
        assert got["scores"] == want["scores"] and got["note"] is None
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".all.")]


def test_parquet_without_pyarrow_is_one_line(tiny_bundle, tmp_path, monkeypatch, capsys):
    from recbole_sasrec_ext.serving.cli import recommend_main

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    out = tmp_path / "all.parquet"
    assert recommend_main(["--bundle", str(tiny_bundle[1]), "--all-users", "--out",
                           str(out), "--backend", "torch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out *.parquet needs pyarrow")
    assert not out.exists() and not list(tmp_path.iterdir())


FRESH = textwrap.dedent("""
    import json, sys
    from recbole_sasrec_ext import serving
    rec = serving.load(sys.argv[1])  # auto: onnxruntime
    [res] = rec.recommend([["1", "2", "zz"]], k=3)
    print(json.dumps({"backend": rec.scorer.name, "items": res.items, "unknown": res.unknown,
                      "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
""")


def test_bundle_recommends_in_a_fresh_venv_without_recbole(tiny_bundle, tmp_path):
    """A new virtual environment (no pip, no site packages) that sees only numpy, onnxruntime
    and the plugin's source: the bundle loads and recommends, nothing else is imported."""
    import venv

    import numpy
    import onnxruntime

    env_dir, deps = tmp_path / "venv", tmp_path / "deps"
    venv.create(env_dir, with_pip=False)
    deps.mkdir()
    for module in (numpy, onnxruntime):
        package = os.path.dirname(module.__file__)
        os.symlink(package, deps / os.path.basename(package))
        libs = package + ".libs"  # the wheel's bundled shared libraries, when it has them
        if os.path.isdir(libs):
            os.symlink(libs, deps / os.path.basename(libs))
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "deps.pth").write_text(str(deps) + "\n")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([str(python), "-c", FRESH, str(tiny_bundle[1])], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout)
    assert row["backend"] == "onnx" and len(row["items"]) == 3 and row["unknown"] == ["zz"]
    assert not {"recbole", "torch", "pandas", "scipy"} & set(row["loaded"])
    missing = subprocess.run([str(python), "-c", "import recbole"], env=env, capture_output=True,
                             check=False)
    assert missing.returncode != 0  # the venv really has no recbole


def test_inference_benchmark_steps(tiny_bundle, tmp_path):
    """--steps: every engineering step of docs/serving.md's table, then the batch sizes and
    2 threads, each with its users/s."""
    from recbole_sasrec_ext.benchmark.inference import STEPS

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "recbole_sasrec_ext.benchmark.inference", "--bundle",
         str(tiny_bundle[1]), "--steps", "--rounds", "1", "--batch-sizes", "8,16"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    rows = [(r["step"], r["batch_size"], r["threads"]) for r in report["steps"]]
    assert rows == [(s, 8, None) for s in STEPS] + [("topk", 16, None), ("topk", 8, 2)]
    assert all(r["users"] == 40 and r["users_per_s"] > 0 for r in report["steps"])
    assert "| plain: " in proc.stdout and "load average" in proc.stdout
