"""Command lines over a bundle: ``recommend --bundle`` and ``similar`` (JSON lines on stdout).

``python -m recbole_sasrec_ext recommend --bundle DIR`` with ``--sequence "t1,t2"`` (one
sequence), ``--all-users --out FILE`` (every user of the bundle's histories, streamed to FILE
chunk by chunk: Parquet when FILE ends with ``.parquet``, JSON lines otherwise) or neither
(JSON lines on stdin: ``{"sequence": [...], "k": 10, "candidates": [...]}`` or a bare list of
tokens). ``python -m recbole_sasrec_ext similar --bundle DIR --item T``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

from recbole_sasrec_ext.common.atomic_write import atomic_path
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from recbole_sasrec_ext.serving.backends import BACKENDS
from recbole_sasrec_ext.serving.recommender import (
    BATCH_SIZE,
    BundleRecommender,
    Recommendation,
    load,
)
from recbole_sasrec_ext.serving.requests import LIMITS, parse_request

#: JSON lines read from stdin per forward pass.
STDIN_CHUNK = 256


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, allow_nan=False)


def _load(args: argparse.Namespace) -> BundleRecommender:
    if args.batch_size is not None and args.batch_size < 1:
        raise PluginError(f"--batch-size must be >= 1, got {args.batch_size}")
    return load(args.bundle, args.backend, args.threads, args.batch_size or BATCH_SIZE)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="a folder written by export")
    parser.add_argument("--k", type=int, default=10, help="items per answer (default 10)")
    parser.add_argument("--backend", default="auto", choices=("auto", *BACKENDS),
                        help="runtime: onnx (onnxruntime), torch, or auto (onnx if installed)")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"sequences per forward pass (default {BATCH_SIZE})")


def _stdin_answers(rec: BundleRecommender, lines: Iterable[str], k: int, exclude_seen: bool,
                   errors: list[str]) -> Iterator[dict]:
    """One JSON object per non-blank input line (``{"line": n, "error": ...}`` for a bad
    one); ``STDIN_CHUNK`` lines per forward pass."""
    batch: list = []
    bad: list[tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            body = parse_request(json.loads(line), LIMITS, k, exclude_seen)
            batch.append((number, rec.request(body.sequence, body.candidates),
                          (body.k, body.exclude_seen)))
        except (ValueError, PluginError) as exc:
            message = f"stdin line {number}: {exc}"
            bad.append((number, message))
            batch.append((number, None, None))
        if len(batch) >= STDIN_CHUNK:
            yield from _flush(rec, batch, bad, errors)
            batch, bad = [], []
    yield from _flush(rec, batch, bad, errors)


def _flush(rec: BundleRecommender, batch: list, bad: list, errors: list[str]
           ) -> Iterator[dict]:
    """Answer a chunk of parsed lines, one forward pass per distinct (k, exclude_seen)."""
    messages = dict(bad)
    answers: dict[int, dict] = {}
    for key in {key for _, r, key in batch if r is not None}:
        same = [(n, r) for n, r, kk in batch if r is not None and kk == key]
        for (n, _), res in zip(same, rec.answer([r for _, r in same], *key)):
            answers[n] = res.to_dict()
    for n, r, _ in batch:
        if r is None:
            errors.append(messages[n])
            yield {"line": n, "error": messages[n]}
        else:
            yield answers[n]


def write_jsonl(chunks: Iterable[list[Recommendation]], f: TextIO) -> int:
    """One JSON object per recommendation, one line each, a chunk at a time; the count."""
    count = 0
    for chunk in chunks:
        f.write("".join(_dumps(res.to_dict()) + "\n" for res in chunk))
        count += len(chunk)
    return count


def parquet_schema(titles: bool):
    """The Parquet columns of ``--all-users``: user, items (best first), scores, note, and
    titles when the bundle has them."""
    import pyarrow as pa

    fields = [("user", pa.string()), ("items", pa.list_(pa.string())),
              ("scores", pa.list_(pa.float64())), ("note", pa.string())]
    if titles:
        fields.append(("titles", pa.list_(pa.string())))
    return pa.schema(fields)


def write_parquet(chunks: Iterable[list[Recommendation]], path: str, titles: bool) -> int:
    """The recommendations as a Parquet file, one row group per chunk (a ``ParquetWriter``:
    memory bounded by the chunk); the count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(titles)
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        for chunk in chunks:
            columns = {"user": [r.user for r in chunk], "items": [r.items for r in chunk],
                       "scores": [r.scores for r in chunk], "note": [r.note for r in chunk]}
            if titles:
                columns["titles"] = [r.titles for r in chunk]
            writer.write_table(pa.table(columns, schema=schema))
            count += len(chunk)
    return count


def _needs_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise PluginError("--out *.parquet needs pyarrow: pip install "
                          "'recbole_sasrec_ext[parquet]' (or pyarrow), or write JSON lines "
                          "(any other suffix)") from None


def _write_all_users(rec: BundleRecommender, out: str, k: int, exclude_seen: bool,
                     chunk: int) -> int:
    """Every user's top-``k`` to ``out``: Parquet when it ends with ``.parquet``, else JSON
    lines; written atomically, chunk by chunk."""
    parquet = out.lower().endswith(".parquet")
    if parquet:
        _needs_pyarrow()
    chunks = rec.recommend_all_chunks(k, exclude_seen, chunk)
    with atomic_path(out) as tmp:
        if parquet:
            return write_parquet(chunks, str(tmp), bool(rec.bundle.titles))
        with open(tmp, "w", encoding="utf-8") as f:
            return write_jsonl(chunks, f)


def recommend_main(argv: list[str], stdin: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_sasrec_ext recommend --bundle DIR",
        description="Top-k items from a bundle for a sequence, JSON lines on stdin, or all users.",
    )
    _common(parser)
    parser.add_argument("--sequence", default=None, help='item tokens, oldest first: "t1,t2"')
    parser.add_argument("--candidates", default=None, help='recommend only among "c1,c2,..."')
    parser.add_argument("--all-users", action="store_true",
                        help="every user of the bundle's histories (needs --out)")
    parser.add_argument("--out", default=None,
                        help="file for --all-users: Parquet if it ends with .parquet (needs "
                        "pyarrow: the [parquet] extra), JSON lines otherwise")
    parser.add_argument("--chunk", type=int, default=4096, help="users per chunk (--all-users)")
    parser.add_argument("--include-seen", action="store_true",
                        help="allow items of the sequence (excluded by default)")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be >= 1")
    if args.all_users and not args.out:
        parser.error("--all-users needs --out FILE")
    exclude = not args.include_seen
    try:
        rec = _load(args)
        if args.all_users:
            start = time.perf_counter()
            n = _write_all_users(rec, args.out, args.k, exclude, args.chunk)
            seconds = time.perf_counter() - start
            print(f"{n} users in {seconds:.3f} s ({n / max(seconds, 1e-9):.0f} users/s, "
                  f"{rec.scorer.name}) -> {args.out}", file=sys.stderr)
            return EXIT_OK
        if args.sequence is not None:
            tokens = [t.strip() for t in args.sequence.split(",") if t.strip()]
            candidates = (None if args.candidates is None
                          else [t.strip() for t in args.candidates.split(",") if t.strip()])
            res = rec.recommend([tokens], args.k, exclude, candidates)[0]
            sys.stdout.write(_dumps(res.to_dict()) + "\n")
            return EXIT_OK
        errors: list[str] = []
        for row in _stdin_answers(rec, stdin or sys.stdin, args.k, exclude, errors):
            sys.stdout.write(_dumps(row) + "\n")
        for message in errors:
            print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT if errors else EXIT_OK
    except PluginError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT


def similar_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_sasrec_ext similar",
        description="Items most similar to one item (cosine of the item embeddings), JSON.",
    )
    _common(parser)
    parser.add_argument("--item", required=True, help="an item token")
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be >= 1")
    try:
        res: Recommendation = _load(args).similar_items(args.item, args.k)
    except PluginError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(_dumps(res.to_dict()) + "\n")
    return EXIT_OK
