"""Synthetic interaction logs shaped like MovieLens-20M, for scale tests.

``python -m recbole_sasrec_ext.convert.synthetic --users 138000 --items 27000
--interactions 20000000 --seed 0 --out DIR --name NAME`` writes ``DIR/NAME/NAME.inter``
(``user_id:token  item_id:token  timestamp:float``) and ``DIR/NAME/NAME.yaml``, atomically, in
chunks of users (memory does not grow with the number of interactions).

The data (:class:`SyntheticSpec`):

* users' sequence lengths are heavy-tailed: ``min_length`` plus a log-normal share
  (sigma ``length_sigma``) of the remaining interactions, so they sum exactly to
  ``interactions`` (ML-20M: every user has at least 20 ratings, mean 144, max 9,254);
* item popularity is Zipf-like (the item of popularity rank r has weight r^-``zipf_exponent``);
* items belong to ``clusters`` random groups. Each item has ``successors`` fixed next items drawn
  from its own group by popularity. A user's next item is, with probability ``follow_prob``, one
  of the current item's successors (the first one most often: weight 1/(k+1)); else, with
  probability ``drift_prob``, a popular item of a new group (drawn by group popularity), else a
  popular item of the current group. The successor graph is what a sequential model can learn
  and a popularity ranking cannot;
* items may repeat within a user (about a third of the rows at the defaults; ML-20M has none);
* times: each user starts at a uniform time in 1995-2015 and moves on by 1 + an exponential
  number of seconds (mean ``mean_gap_seconds``); rows are written by user, then time.

Ids are ``1..users`` and ``1..items`` (item ids are a random permutation of popularity ranks).
The same spec and seed give the same bytes. No torch, no RecBole.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_sasrec_ext.common.atomic_write import atomic_path
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from recbole_sasrec_ext.convert.columns import COLUMN_ORDER, FIELD_TYPES
from recbole_sasrec_ext.convert.writer import (
    ConversionSummary,
    _refuse_existing,
    _yaml_text,
    output_paths,
)

#: Users generated together (a fixed constant: the output depends on it).
CHUNK_USERS = 16_384
#: First and last time of MovieLens-20M (1995-01-09, 2015-03-31), Unix seconds.
FIRST_TIME, LAST_TIME = 789_652_009, 1_427_784_002
#: Suffixes the CLI accepts in sizes (``20M``, ``5k``).
SIZE_SUFFIX = {"k": 1_000, "K": 1_000, "M": 1_000_000, "G": 1_000_000_000}


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate (see the module docstring for the model)."""

    users: int
    items: int
    interactions: int
    seed: int = 0
    min_length: int = 20
    length_sigma: float = 1.1
    zipf_exponent: float = 0.7
    clusters: int | None = None  # None: round(sqrt(items))
    successors: int = 32
    follow_prob: float = 0.5
    drift_prob: float = 0.05
    mean_gap_seconds: float = 3600.0

    def problem(self) -> str | None:
        """Why the spec cannot be generated (one line), or None."""
        ints = {"users": 1, "items": 2, "interactions": 1, "seed": 0, "min_length": 1,
                "successors": 1}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                return f"{name} = {value!r} must be an integer >= {low}"
        if self.clusters is not None and not 1 <= self.clusters <= self.items:
            return f"clusters = {self.clusters!r} must be in [1, items = {self.items}]"
        if self.interactions < self.users * self.min_length:
            return (f"interactions = {self.interactions} is fewer than users x min_length = "
                    f"{self.users} x {self.min_length}")
        for name in ("follow_prob", "drift_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                return f"{name} = {getattr(self, name)!r} must be in [0, 1]"
        for name in ("length_sigma", "zipf_exponent", "mean_gap_seconds"):
            if not getattr(self, name) >= 0.0:
                return f"{name} = {getattr(self, name)!r} must be >= 0"
        return None

    @property
    def n_clusters(self) -> int:
        return self.clusters if self.clusters is not None else max(1, round(math.sqrt(self.items)))


def user_lengths(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user (U,): ``min_length`` + a log-normal share of the rest, summing to
    ``interactions`` exactly (remainders to the largest fractions, ties by user)."""
    weights = rng.lognormal(0.0, spec.length_sigma, size=spec.users)  # (U,)
    extra = spec.interactions - spec.users * spec.min_length
    share = extra * weights / weights.sum()  # (U,)
    base = np.floor(share).astype(np.int64)
    left = extra - int(base.sum())
    order = np.argsort(-(share - base), kind="stable")
    base[order[:left]] += 1
    return base + spec.min_length


@dataclass(frozen=True)
class _ItemGraph:
    """Items grouped by cluster: ``members`` (items in cluster order), cluster ``start`` offsets,
    ``cdf`` (cluster c's items hold c + their within-cluster cumulative popularity), cluster of
    each item, cluster popularity ``cluster_cdf`` and each item's ``successors`` (I, K)."""

    members: np.ndarray
    start: np.ndarray
    cdf: np.ndarray
    cluster_of: np.ndarray
    cluster_cdf: np.ndarray
    successors: np.ndarray
    successor_cdf: np.ndarray

    def draw_in(self, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per entry of ``clusters``, by popularity within the cluster."""
        pos = np.searchsorted(self.cdf, clusters + rng.random(clusters.size), side="right")
        pos = np.clip(pos, self.start[clusters], self.start[clusters + 1] - 1)
        return self.members[pos]

    def draw_cluster(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` clusters by total popularity."""
        return np.minimum(np.searchsorted(self.cluster_cdf, rng.random(n), side="right"),
                          self.start.size - 2)


def item_graph(spec: SyntheticSpec, rng: np.random.Generator) -> _ItemGraph:
    """Popularity, clusters and the successor graph (item indices 0..items-1 = popularity rank)."""
    n, c = spec.items, spec.n_clusters
    popularity = np.arange(1, n + 1, dtype=np.float64) ** -spec.zipf_exponent  # (I,) by rank
    cluster_of = rng.integers(0, c, size=n)  # (I,)
    cluster_of[rng.permutation(n)[:c]] = np.arange(c)  # no empty cluster
    members = np.argsort(cluster_of, kind="stable")  # (I,) items grouped by cluster
    start = np.r_[0, np.cumsum(np.bincount(cluster_of, minlength=c))]  # (C+1,)
    weight = popularity[members]
    total = np.add.reduceat(weight, start[:-1])  # (C,)
    within = np.cumsum(weight) - np.repeat(np.r_[0.0, np.cumsum(total)[:-1]], np.diff(start))
    cdf = cluster_of[members] + within / np.repeat(total, np.diff(start))  # (I,)
    cluster_cdf = np.cumsum(total) / total.sum()  # (C,)
    graph = _ItemGraph(members, start, cdf, cluster_of, cluster_cdf, np.empty(0), np.empty(0))
    k = spec.successors
    successors = graph.draw_in(np.repeat(cluster_of, k), rng).reshape(n, k)  # (I, K)
    rank_weight = 1.0 / np.arange(1, k + 1)
    successor_cdf = np.cumsum(rank_weight) / rank_weight.sum()  # (K,)
    return _ItemGraph(members, start, cdf, cluster_of, cluster_cdf, successors, successor_cdf)


def _walks(lengths: np.ndarray, graph: _ItemGraph, spec: SyntheticSpec,
           rng: np.random.Generator) -> np.ndarray:
    """Item indices of the users of one chunk, concatenated user after user (sum(lengths),)."""
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]  # (U,) first row of each user
    order = np.argsort(-lengths, kind="stable")  # longest first: active users are a prefix
    sorted_len, sorted_off = lengths[order], offsets[order]
    out = np.empty(int(lengths.sum()), dtype=np.int64)
    cluster = graph.draw_cluster(len(order), rng)  # (U,)
    item = graph.draw_in(cluster, rng)  # (U,)
    for t in range(int(sorted_len[0])):
        m = int(np.searchsorted(-sorted_len, -t, side="left"))  # users with length > t
        if t > 0:
            cur, cl = item[:m], cluster[:m]
            u = rng.random(m)
            follow = u < spec.follow_prob
            drift = ~follow & (u < spec.follow_prob + (1 - spec.follow_prob) * spec.drift_prob)
            cl = np.where(drift, graph.draw_cluster(m, rng), cl)
            pick = np.searchsorted(graph.successor_cdf, rng.random(m), side="right")
            pick = np.minimum(pick, spec.successors - 1)
            nxt = np.where(follow, graph.successors[cur, pick], graph.draw_in(cl, rng))
            cluster = np.where(follow, graph.cluster_of[nxt], cl)
            item = nxt
        out[sorted_off[:m] + t] = item[:m]
    return out


def generate(spec: SyntheticSpec) -> Iterator[pd.DataFrame]:
    """The interactions, as frames of ``CHUNK_USERS`` users (user, item, timestamp columns)."""
    problem = spec.problem()
    if problem:
        raise ValueError(problem)
    rng = np.random.default_rng([spec.seed, 0])  # item structure
    graph = item_graph(spec, rng)
    item_ids = rng.permutation(spec.items) + 1  # popularity rank -> written id
    lengths = user_lengths(spec, np.random.default_rng([spec.seed, 1]))
    for index, first in enumerate(range(0, spec.users, CHUNK_USERS)):
        chunk_rng = np.random.default_rng([spec.seed, 2, index])  # walks and times of a chunk
        chunk = lengths[first:first + CHUNK_USERS]
        items = _walks(chunk, graph, spec, chunk_rng)
        users = np.repeat(np.arange(first + 1, first + len(chunk) + 1), chunk)
        gaps = 1 + np.floor(
            chunk_rng.exponential(spec.mean_gap_seconds, size=items.size)
        ).astype(np.int64)
        starts = np.r_[0, np.cumsum(chunk)[:-1]]
        gaps[starts] = 0
        time = np.cumsum(gaps)
        time -= np.repeat(time[starts], chunk)  # (n,) seconds since the user's first item
        span = np.repeat(time[np.r_[starts[1:], time.size] - 1], chunk)  # (n,) user's last offset
        room = np.maximum(LAST_TIME - FIRST_TIME - span, 0)
        begin = FIRST_TIME + np.floor(
            np.repeat(chunk_rng.random(len(chunk)), chunk) * room
        ).astype(np.int64)
        yield pd.DataFrame(
            {"user_id": users, "item_id": item_ids[items], "timestamp": begin + time}
        )


def write_synthetic(spec: SyntheticSpec, out_dir: str | Path, name: str,
                    overwrite: bool = False) -> ConversionSummary:
    """Write ``<out_dir>/<name>/<name>.inter`` and ``.yaml`` (atomically, chunk by chunk)."""
    problem = spec.problem()
    if problem:
        raise ValueError(problem)
    inter_path, yaml_path = output_paths(out_dir, name)
    if not overwrite:
        _refuse_existing([inter_path, yaml_path])
    columns = [c for c in COLUMN_ORDER if c != "rating"]
    header = "\t".join(f"{c}:{FIELD_TYPES[c]}" for c in columns) + "\n"
    settings = ", ".join(f"{f.name}={getattr(spec, f.name)}" for f in fields(spec))
    comments = [f"RecBole dataset '{name}', synthetic, "
                "written by recbole_sasrec_ext.convert.synthetic",
                f"spec: {settings}",
                "timestamp = Unix seconds (synthetic); rows by user, then time",
                f"data: {name}.inter next to this file; use data_path: <folder holding {name}/>"]
    inter_path.parent.mkdir(parents=True, exist_ok=True)
    items_seen = np.zeros(spec.items + 1, dtype=bool)
    with atomic_path(yaml_path) as yaml_tmp, atomic_path(inter_path) as inter_tmp:
        with inter_tmp.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(header)
            for frame in generate(spec):
                items_seen[frame["item_id"].to_numpy()] = True
                frame.to_csv(handle, sep="\t", header=False, index=False, lineterminator="\n")
        with yaml_tmp.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(_yaml_text(columns, comments))
    return ConversionSummary(name, spec.users, int(items_seen.sum()), spec.interactions,
                             inter_path, yaml_path)


def parse_size(text: str) -> int:
    """``20000000``, ``20M``, ``5k`` -> int (argparse type)."""
    text = text.strip().replace("_", "")
    scale = SIZE_SUFFIX.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in SIZE_SUFFIX else text
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 20000000, 20M, 5k)") from None
    if value != int(value):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the usage too)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of :func:`main`."""
    p = _Parser(prog="python -m recbole_sasrec_ext.convert.synthetic",
                description="Write a synthetic ML-20M-like data set "
                "<out>/<name>/<name>.inter and .yaml.")
    p.add_argument("--users", type=parse_size, required=True)
    p.add_argument("--items", type=parse_size, required=True)
    p.add_argument("--interactions", type=parse_size, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-length", type=int, default=SyntheticSpec.min_length,
                   help="fewest interactions of a user (ML-20M: 20)")
    p.add_argument("--clusters", type=int, default=None, help="item groups (default sqrt(items))")
    p.add_argument("--out", required=True, help="parent folder of <name>/ (RecBole 'data_path')")
    p.add_argument("--name", required=True, help="data set name")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Generate; return the exit status (2 with one ``error:`` line for bad arguments)."""
    args = build_parser().parse_args(argv)
    spec = SyntheticSpec(users=args.users, items=args.items, interactions=args.interactions,
                         seed=args.seed, min_length=args.min_length, clusters=args.clusters)
    try:
        summary = write_synthetic(spec, args.out, args.name, overwrite=args.overwrite)
    except (ValueError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(summary)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
