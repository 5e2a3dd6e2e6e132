"""``python -m recbole_sasrec_ext.benchmark.inference --bundle DIR``: inference speed of a bundle.

One run reports, side by side:

* all-users scoring (every user of the bundle's histories, top-10 with seen items excluded,
  written as JSON lines to ``os.devnull``): users/s (wall clock), users per CPU-second (the
  process's CPU time: less sensitive to other jobs sharing the machine) and peak RSS for each
  runtime (onnxruntime, PyTorch) and batch size, each measured in a fresh child process;
* parity: ONNX vs PyTorch scores of every user (largest difference, users whose top-10 differ);
* a bounded load test of ``serve`` on 127.0.0.1: ``--clients`` concurrent keep-alive clients
  for ``--seconds`` seconds, each posting one user's history (``k`` 10): requests/s, p50/p99
  latency, errors (non-200 answers).

Prints a Markdown table and, last, one JSON object with every number.

``--steps`` instead measures only all-users scoring on onnxruntime, once per engineering step of
:data:`STEPS` (from the plain forward padded to the full window up to the serving default), then
the default at the other ``--batch-sizes`` and with 2 intra-op threads, the configurations
alternated over ``--rounds`` rounds (median and every round, with the load average): the table
of docs/serving.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from recbole_sasrec_ext.serving import load

#: The cumulative steps of ``--steps`` (docs/serving.md, "Where the speed comes from"): each adds
#: one change to the one before; the last is the serving default.
STEPS = {
    "plain": "the plain forward (every block at every position) exported to ONNX, every batch "
             "padded to max_seq_length, users in file order, onnxruntime on all cores, numpy "
             "top-k",
    "cut": "+ users sorted by length (per chunk), each batch cut to its longest sequence",
    "last": "+ the last block at each sequence's last position only (the bundle's graph)",
    "session": "+ session options: 1 intra-op thread (sequential execution, memory pattern and "
               "full graph optimisation were already on)",
    "topk": "+ top-k on onnxruntime's TopK instead of numpy's argpartition (the default)",
}


class _PadToMax:
    """A scorer wrapper that pads every batch to ``max_len`` (the ``plain`` step)."""

    def __init__(self, scorer, max_len: int):
        self.scorer, self.max_len, self.name = scorer, max_len, scorer.name

    def __call__(self, item_seq: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        full = np.zeros((len(item_seq), self.max_len), dtype=np.int64)  # (B, max_len)
        full[:, : item_seq.shape[1]] = item_seq
        return self.scorer(full, lengths)

    def top_k(self, scores: np.ndarray, k: int):
        return self.scorer.top_k(scores, k)


def _in_file_order(rec, k: int, chunk_size: int = 4096):
    """``recommend_all_chunks`` without the sort by length (the ``plain`` step)."""
    from recbole_sasrec_ext.serving.recommender import Request

    hist = rec.bundle.histories
    for begin in range(0, len(hist), chunk_size):
        rows = range(begin, min(begin + chunk_size, len(hist)))
        results = rec.answer([Request(np.asarray(hist.of(u), dtype=np.int64), [], None)
                              for u in rows], k)
        for u, res in zip(rows, results):
            res.user = hist.users[u]
        yield results


def all_users_child(bundle: str, backend: str, batch_size: int, threads: int | None,
                    step: str | None = None) -> dict:
    """Users/s of ``recommend_all`` written as JSON lines to ``os.devnull`` (after one warm-up
    batch) and this process's peak RSS; ``step``: one of :data:`STEPS` (``bundle`` is then the
    plain graph's bundle for ``plain`` and ``cut``)."""
    from recbole_sasrec_ext.serving.cli import write_jsonl
    from recbole_sasrec_ext.serving.topk import top_k_rows

    names = list(STEPS)
    session = {"intra_op_threads": None} if step and names.index(step) < 3 else None
    rec = load(bundle, backend, threads, batch_size, session)
    if step and names.index(step) < 4:
        rec.scorer.top_k = top_k_rows
    if step == "plain":
        rec.scorer = _PadToMax(rec.scorer, rec.max_len)
    hist = rec.bundle.histories
    rec.answer([rec.request([rec.bundle.items[i] for i in hist.of(0)])], 10)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    chunks = (_in_file_order(rec, 10) if step == "plain"
              else rec.recommend_all_chunks(k=10, exclude_seen=True))
    with open(os.devnull, "w", encoding="utf-8") as sink:
        write_jsonl(chunks, sink)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"backend": backend, "batch_size": batch_size, "step": step, "users": len(hist),
            "seconds": round(seconds, 3), "users_per_s": round(len(hist) / seconds, 1),
            "cpu_seconds": round(cpu, 3), "users_per_cpu_s": round(len(hist) / cpu, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def plain_bundle(bundle: str, out: str) -> str:
    """A copy of ``bundle`` (links) whose ``model.onnx`` is the plain forward: every block at
    every position, then the last position read (needs torch and onnx)."""
    import shutil

    import torch

    from recbole_sasrec_ext.serving import bundle as bundle_io
    from recbole_sasrec_ext.serving.encoder import LastPositionEncoder
    from recbole_sasrec_ext.serving.export import export_onnx

    src = os.path.abspath(bundle)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for name in os.listdir(src):
        if name != bundle_io.ONNX_MODEL:
            os.symlink(os.path.join(src, name), os.path.join(out, name))
    settings = json.loads(open(os.path.join(src, bundle_io.SETTINGS), encoding="utf-8").read())
    encoder = LastPositionEncoder(settings["encoder"], last_only=False).eval()
    encoder.load_state_dict(torch.load(os.path.join(src, bundle_io.TORCH_WEIGHTS),
                                       map_location="cpu", weights_only=True))
    export_onnx(encoder, __import__("pathlib").Path(out) / bundle_io.ONNX_MODEL)
    return out


def steps(bundle: str, batch_sizes: list[int], rounds: int, threads: int | None,
          work: str) -> list[dict]:
    """Every step of :data:`STEPS` (at the first batch size), the serving default at every
    batch size and with 2 intra-op threads, each a fresh process, alternated over ``rounds``
    rounds; the median round of each."""
    plain = plain_bundle(bundle, os.path.join(work, "plain-bundle"))
    configs = [(step, batch_sizes[0], threads) for step in STEPS]
    configs += [("topk", b, threads) for b in batch_sizes[1:]]
    configs += [("topk", batch_sizes[0], 2)] if threads != 2 else []
    runs: dict[tuple, list[dict]] = {c: [] for c in configs}
    for _ in range(rounds):
        for step, batch, n in configs:
            path = plain if step in ("plain", "cut") else bundle
            result = _child(path, "onnx", batch, n, step)
            result["threads"] = n
            runs[(step, batch, n)].append(result)
    out = []
    for results in runs.values():
        results.sort(key=lambda r: r["users_per_s"])
        median = dict(results[len(results) // 2])
        median["all_users_per_s"] = [r["users_per_s"] for r in results]
        out.append(median)
    return out


def parity(bundle: str, chunk: int = 1024) -> dict:
    """ONNX vs PyTorch on every user: largest score difference and top-10 disagreements."""
    onnx_rec, torch_rec = load(bundle, "onnx"), load(bundle, "torch")
    hist = onnx_rec.bundle.histories
    worst, differ = 0.0, 0
    for begin in range(0, len(hist), chunk):
        seqs = [np.asarray(hist.of(u), dtype=np.int64) for u in
                range(begin, min(begin + chunk, len(hist)))]
        a, b = onnx_rec.scores(seqs), torch_rec.scores(seqs)  # (c, n_items) each
        worst = max(worst, float(np.abs(a - b).max()))
        top_a = np.argsort(-a[:, 1:], axis=1, kind="stable")[:, :10]  # (c, 10)
        top_b = np.argsort(-b[:, 1:], axis=1, kind="stable")[:, :10]  # (c, 10)
        differ += int((top_a != top_b).any(1).sum())
    return {"users": len(hist), "max_abs_score_diff": worst, "top10_differ": differ}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _client(port: int, bodies: list[bytes], until: float, latencies: list[float],
                  errors: list[int], seed: int) -> None:
    """One keep-alive connection posting random bodies until ``until``."""
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            body = bodies[rng.randrange(len(bodies))]
            head = (f"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                    f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            start = time.perf_counter()
            writer.write(head + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


#: Malformed bodies of the load test's second phase (each must be answered with a 4xx).
MALFORMED = (
    b"{not json", b'{"sequence": "1,2"}', b'{"sequence": ["1"], "k": 1000000000}',
    b'{"sequence": ["1"], "k": "ten"}', b'{"sequence": [1.5]}', b'{"seq": []}', b"[]]",
    json.dumps({"sequence": ["1"] * 10**6}).encode(),  # a 10^6-item sequence (body too large)
)


async def _malformed(port: int, count: int) -> dict[str, int]:
    """``count`` malformed requests, each on its own connection: status code -> how many."""
    statuses: dict[str, int] = {}
    for i in range(count):
        body = MALFORMED[i % len(MALFORMED)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((f"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                      f"{len(body)}\r\nConnection: close\r\n\r\n").encode())
        line = b""
        if len(body) > 1 << 20:  # the server answers a too-large body from its headers alone
            try:
                line = await asyncio.wait_for(reader.readline(), 2.0)
            except asyncio.TimeoutError:
                pass
        try:
            if not line:
                writer.write(body)
                line = await reader.readline()
            key = line.split()[1].decode() if line else "closed"
        except ConnectionError:
            key = "reset"
        statuses[key] = statuses.get(key, 0) + 1
        writer.close()
    return statuses


def load_test(bundle: str, clients: int, seconds: float, backend: str, threads: int | None,
              max_wait_ms: float) -> dict:
    """Start ``serve``, hit it with ``clients`` connections for ``seconds``, stop it."""
    rec = load(bundle, "torch")  # only for the request bodies
    hist = rec.bundle.histories
    users = random.Random(0).sample(range(len(hist)), min(2000, len(hist)))
    bodies = [json.dumps({"sequence": [rec.bundle.items[i] for i in hist.of(u)[-200:]],
                          "k": 10}).encode() for u in users]
    port = _free_port()
    command = [sys.executable, "-m", "recbole_sasrec_ext", "serve", "--bundle", bundle,
               "--port", str(port), "--backend", backend, "--max-wait-ms", str(max_wait_ms)]
    if threads:
        command += ["--threads", str(threads)]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        latencies: list[float] = []
        errors: list[int] = []

        async def run(duration: float) -> None:
            until = time.perf_counter() + duration
            await asyncio.gather(*(_client(port, bodies, until, latencies, errors, i)
                                   for i in range(clients)))

        asyncio.run(run(1.0))  # warm-up
        latencies.clear()
        errors.clear()
        start = time.perf_counter()
        asyncio.run(run(seconds))
        elapsed = time.perf_counter() - start
        malformed = asyncio.run(_malformed(port, 1000))
        up = server.poll() is None
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    ms = np.asarray(latencies) * 1000
    return {"clients": clients, "seconds": round(elapsed, 2), "requests": len(latencies),
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "errors": len(errors),
            "backend": backend, "max_wait_ms": max_wait_ms,
            "malformed": {"sent": 1000, "statuses": malformed, "server_up_after": up}}


def scale_bundle(bundle: str, folder: str, users: int, interactions: int, seed: int = 0) -> str:
    """A copy of ``bundle`` (its files linked) whose histories are ``interactions`` synthetic
    interactions of ``users`` users: lengths >= 20 plus a log-normal share (ML-20M-like), items
    Zipf-like over the bundle's vocabulary. Returns the new bundle folder."""
    from pathlib import Path

    from recbole_sasrec_ext.serving import bundle as bundle_io

    src, out = Path(bundle), Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in bundle_io.REQUIRED:
        if not (out / name).exists():
            os.symlink((src / name).resolve(), out / name)
    rng = np.random.default_rng(seed)
    share = rng.lognormal(0.0, 1.2, users)
    lengths = 20 + np.floor(share / share.sum() * (interactions - 20 * users)).astype(np.int64)
    lengths[: interactions - int(lengths.sum())] += 1  # (U,) summing to interactions
    n_items = len(json.loads((src / bundle_io.ITEMS).read_text()))
    weights = 1.0 / np.arange(1, n_items) ** 0.9
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)  # (U+1,)
    items = np.lib.format.open_memmap(out / bundle_io.HISTORY_ITEMS, "w+", np.int32,
                                      (int(offsets[-1]),))  # (N,)
    step = 1 << 22
    for begin in range(0, len(items), step):
        end = min(begin + step, len(items))
        items[begin:end] = 1 + rng.choice(n_items - 1, end - begin, p=weights / weights.sum())
    items.flush()
    np.save(out / bundle_io.HISTORY_OFFSETS, offsets)
    (out / bundle_io.USERS).write_text(json.dumps([str(u) for u in range(1, users + 1)]))
    return str(out)


#: Runs ``recommend --bundle`` and prints its peak RSS (KiB) last.
_PEAK = ("import resource, sys\n"
         "from recbole_sasrec_ext.serving.cli import recommend_main\n"
         "rc = recommend_main(sys.argv[1:])\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
         "sys.exit(rc)\n")


def scale_child(bundle: str, out: str, threads: int | None) -> dict:
    """``recommend --bundle B --all-users --out F`` in a child process: its users/s line, peak
    RSS and the output's size."""
    command = [sys.executable, "-c", _PEAK, "--bundle", bundle, "--all-users", "--out", out]
    if threads:
        command += ["--threads", str(threads)]
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    with open(out, "rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    return {"users_written": lines, "peak_rss_mb": round(int(proc.stdout.split()[-1]) / 1024, 1),
            "report": proc.stderr.strip().splitlines()[-1]}


def _child(bundle: str, backend: str, batch_size: int, threads: int | None,
           step: str | None = None) -> dict:
    command = [sys.executable, "-m", "recbole_sasrec_ext.benchmark.inference", "--bundle", bundle,
               "--child", backend, str(batch_size)]
    if threads:
        command += ["--threads", str(threads)]
    if step:
        command += ["--step", step]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict], check: dict, server: dict | None) -> str:
    """The Markdown table of a run."""
    lines = ["| all-users scoring | batch | users/s | users per CPU-second | peak RSS (MB) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['batch_size']} | {r['users_per_s']:.0f} | "
              f"{r['users_per_cpu_s']:.0f} | {r['peak_rss_mb']:.0f} |" for r in rows]
    lines += ["", f"Parity on {check['users']} users: largest |ONNX - PyTorch| score difference "
              f"{check['max_abs_score_diff']:.2e}, users whose top-10 differ: "
              f"{check['top10_differ']}."]
    if server:
        lines += ["",
                  "| server | clients | seconds | requests | req/s | p50 ms | p99 ms | errors |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {server['backend']}, wait {server['max_wait_ms']} ms | {server['clients']} | "
                  f"{server['seconds']} | {server['requests']} | {server['requests_per_s']:.0f} | "
                  f"{server['p50_ms']} | {server['p99_ms']} | {server['errors']} |",
                  "", f"Then 1,000 malformed requests: answers {server['malformed']['statuses']}"
                  f", server still up: {server['malformed']['server_up_after']}."]
    return "\n".join(lines)


def _print_steps(args: argparse.Namespace) -> int:
    import tempfile

    load1 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as work:
        rows = steps(args.bundle, [int(b) for b in args.batch_sizes.split(",")], args.rounds,
                     args.threads, work)
    load2 = os.getloadavg()[0]
    lines = ["| step | batch | threads | users/s (median) | all rounds | users per CPU-second |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['step']}: {STEPS[r['step']]} | {r['batch_size']} | "
              f"{r['threads'] or 'default'} | {r['users_per_s']:.0f} | "
              f"{', '.join(f'{v:.0f}' for v in r['all_users_per_s'])} | "
              f"{r['users_per_cpu_s']:.0f} |" for r in rows]
    print("\n".join(lines))
    print(f"\nload average (1 min) {load1:.2f} before, {load2:.2f} after")
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "load_1min": [load1, load2], "steps": rows}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbole_sasrec_ext.benchmark.inference",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="a folder written by export")
    parser.add_argument("--batch-sizes", default="16,64,256,1024",
                        help="comma separated (--steps: the first is the steps' batch size)")
    parser.add_argument("--backends", default="onnx,torch", help="comma separated")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads")
    parser.add_argument("--clients", type=int, default=16, help="server load test clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="server load test duration")
    parser.add_argument("--max-wait-ms", type=float, default=2.0, help="server batching wait")
    parser.add_argument("--server-backend", default="onnx", help="runtime of the server")
    parser.add_argument("--no-server", action="store_true", help="skip the load test")
    parser.add_argument("--scale", default=None, metavar="USERS,INTERACTIONS",
                        help="also score synthetic histories of this size to a file (e.g. "
                        "138000,20000000): peak RSS of --all-users at scale")
    parser.add_argument("--scale-dir", default="saved/inference-scale",
                        help="where the synthetic bundle and its output go")
    parser.add_argument("--steps", action="store_true",
                        help="only the all-users steps of docs/serving.md (ONNX): each "
                        "engineering step and the batch sizes, alternated over --rounds rounds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --steps (median)")
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--step", default=None, choices=list(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.bundle):
        print(f"error: bundle not found: {args.bundle}", file=sys.stderr)
        return 2
    if args.child:
        result = all_users_child(args.bundle, args.child[0], int(args.child[1]), args.threads,
                                 args.step)
        print(json.dumps(result))
        return 0
    if args.steps:
        return _print_steps(args)
    rows = [_child(args.bundle, b, int(s), args.threads)
            for s in args.batch_sizes.split(",") for b in args.backends.split(",")]
    check = parity(args.bundle)
    server = None if args.no_server else load_test(
        args.bundle, args.clients, args.seconds, args.server_backend, args.threads,
        args.max_wait_ms)
    scale = None
    if args.scale:
        users, interactions = (int(v) for v in args.scale.split(","))
        big = scale_bundle(args.bundle, os.path.join(args.scale_dir, "bundle"), users,
                           interactions)
        scale = {"users": users, "interactions": interactions,
                 **scale_child(big, os.path.join(args.scale_dir, "all.jsonl"), args.threads)}
    print(table(rows, check, server))
    if scale:
        print(f"\nAt scale ({scale['users']} users, {scale['interactions']} interactions): "
              f"{scale['report']}; peak RSS {scale['peak_rss_mb']:.0f} MB.")
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "machine": f"{platform.processor() or platform.machine()}, "
                                 f"{os.cpu_count()} CPUs", "all_users": rows, "parity": check,
                      "server": server, "scale": scale}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
