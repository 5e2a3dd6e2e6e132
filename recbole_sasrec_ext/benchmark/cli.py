"""Command line of the benchmark.

``python -m recbole_sasrec_ext.benchmark <suite> --out <dir> [--profile cpu|gpu] [--seeds 1,2,3]
[--only-models A,B] [--max-runs N] [--jobs N] [--timeout S] [--data-root DIR] [--dry-run]
[--search]`` runs a suite (a name in ``properties/benchmark`` or a path to a yaml file) and
writes results.csv, results.md and plots (``--jobs N``: N runs at a time); with ``--search``,
the suite's validation search into ``<dir>/search`` (search.py), whose chosen settings the
suite's later runs into ``<dir>`` use.
``python -m recbole_sasrec_ext.benchmark report <dir>`` remakes results.md and the plots from the
folder's results.csv.
``python -m recbole_sasrec_ext.benchmark speed <suite> --out <dir> [--target-metric ndcg@10]``
runs the suite's ``reference`` and ``candidate`` models and writes ``speed.md`` comparing them
(speed.py).
``python -m recbole_sasrec_ext.benchmark merge <src> <dst>`` copies the finished runs of output
folder ``src`` into ``dst`` (same suite) and remakes ``dst``'s report: a suite run in pieces in
separate folders at once, combined (merge.py).

Exit status: 0 when the suite finished (even with failed runs), 2 for a bad suite file, bad
arguments or folders that cannot be merged, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from recbole_sasrec_ext.benchmark import results
from recbole_sasrec_ext.benchmark.results import ResultsError
from recbole_sasrec_ext.benchmark.runner import (
    RUN_CMD_ENV,
    command_text,
    default_command_prefix,
    run_suite,
)
from recbole_sasrec_ext.benchmark.search import (
    CHOSEN_NAME,
    SEARCH_DIR,
    choices_note,
    choose,
    own_overrides,
    read_choices,
    with_choices,
    without_own_values,
    write_choices,
)
from recbole_sasrec_ext.benchmark.suite import (
    Suite,
    SuiteError,
    available_suites,
    load_suite,
    plan_summary,
)
from recbole_sasrec_ext.common import lifetime
from recbole_sasrec_ext.common.argv import positive
from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.common.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK

PROG = "python -m recbole_sasrec_ext.benchmark"
REPORT_COMMAND = "report"
SPEED_COMMAND = "speed"
MERGE_COMMAND = "merge"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected at least one name")
    return names


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a benchmark suite: every model x data set x seed in its own subprocess. "
        f"`{PROG} {REPORT_COMMAND} <dir>` remakes the report of a finished folder.",
    )
    parser.add_argument("suite", help=f"suite name ({', '.join(available_suites())}) or yaml path")
    parser.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    parser.add_argument("--seeds", type=_int_list, help="replace the suite's seeds, e.g. 1,2,3")
    parser.add_argument(
        "--only-models", type=_name_list, help="run only these models, e.g. SASRec,Pop"
    )
    parser.add_argument(
        "--only-datasets", type=_name_list, help="run only these data sets of the suite, e.g. games"
    )
    parser.add_argument(
        "--max-runs", type=positive(int), help="start at most N runs now; rerun to continue"
    )
    parser.add_argument(
        "--jobs", type=positive(int), default=1,
        help="runs at the same time, one thread each unless OMP_NUM_THREADS is set (default 1; "
        "2 on a 2-core machine)",
    )
    parser.add_argument(
        "--timeout", type=positive(float), help="seconds per run (replaces the suite's timeout_s)"
    )
    parser.add_argument(
        "--data-root", type=Path, help="base of a relative data_path (default: repo root)"
    )
    parser.add_argument(
        "--profile",
        help="the suite's run budget (its `profiles`, e.g. cpu or gpu); required when it has any",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the run commands, run nothing"
    )
    parser.add_argument(
        "--search", action="store_true",
        help="run the suite's validation search (its `search` block) into OUT/search and write "
        "OUT/search/chosen.json; later runs into OUT use the chosen settings",
    )
    return parser


def _report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {REPORT_COMMAND}",
        description="Remake results.md and the plots from results.csv.",
    )
    parser.add_argument("out", type=Path, help="a benchmark output folder")
    return parser


def _speed_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {SPEED_COMMAND}",
        description="Run a suite's `reference` and `candidate` models (resumable) and write "
        "speed.md: seconds per epoch, time to the reference's best validation score, peak memory.",
    )
    parser.add_argument("suite", help="suite name or yaml path with `reference` and `candidate`")
    parser.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    parser.add_argument(
        "--target-metric",
        help="validation metric of the target, e.g. ndcg@10 (default: the suite's valid_metric)",
    )
    parser.add_argument(
        "--timeout", type=positive(float), help="seconds per run (replaces the suite's timeout_s)"
    )
    parser.add_argument(
        "--data-root", type=Path, help="base of a relative data_path (default: repo root)"
    )
    return parser


def _merge_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {MERGE_COMMAND}",
        description="Copy the finished runs (rows, histories, per-user files, logs) of one output "
        "folder into another of the same suite, then remake the destination's report.",
    )
    parser.add_argument("src", type=Path, help="the output folder to copy finished runs from")
    parser.add_argument("dst", type=Path, help="the output folder to merge them into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    lifetime.sigterm_as_interrupt()  # the running run is stopped as on Ctrl-C
    try:
        if argv and argv[0] == REPORT_COMMAND:
            return _report(_report_parser().parse_args(argv[1:]).out)
        if argv and argv[0] == MERGE_COMMAND:
            return _merge(_merge_parser().parse_args(argv[1:]))
        if argv and argv[0] == SPEED_COMMAND:
            return _speed(_speed_parser().parse_args(argv[1:]), f"{PROG} {shlex.join(argv)}")
        return _run(_run_parser().parse_args(argv), f"{PROG} {shlex.join(argv)}")
    except (SuiteError, ResultsError, PluginError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (lifetime.Terminated)
        terminated = isinstance(exc, lifetime.Terminated)
        print(
            f"{'terminated (SIGTERM)' if terminated else 'interrupted'}: finished runs are saved; "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return lifetime.EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


def _check_out(out: Path) -> None:
    """``--out`` (or the report's folder) is a folder, or can be created, and is writable."""
    from recbole_sasrec_ext.config.validation import check_output_dir

    check_output_dir("--out", out)


def _report(out: Path) -> int:
    from recbole_sasrec_ext.benchmark.report import write_report

    _check_out(out)

    for path in write_report(out):
        print(path)
    return EXIT_OK


def _merge(args: argparse.Namespace) -> int:
    from recbole_sasrec_ext.benchmark.merge import merge_folders

    summary = merge_folders(args.src, args.dst)
    print(
        f"merged {summary.merged} runs from {args.src} into {args.dst} "
        f"({summary.skipped} skipped: failed or incomplete)"
        + (f"; {summary.superseded} runs made with other suite settings replaced"
           if summary.superseded else "")
    )
    return EXIT_OK


def _speed(args: argparse.Namespace, command_line: str) -> int:
    from recbole_sasrec_ext.benchmark.speed import run_speed

    _check_out(args.out)
    suite = load_suite(args.suite).with_profile(None)
    if args.timeout is not None:
        suite = replace(suite, timeout_s=args.timeout)
    path, text = run_speed(
        suite,
        args.out,
        target_metric=args.target_metric,
        data_root=args.data_root,
        command_line=command_line,
    )
    print(text, end="")
    print(f"speed report: {path}", file=sys.stderr)
    return EXIT_OK


def _run(args: argparse.Namespace, command_line: str) -> int:
    if not args.dry_run:
        _check_out(args.out)
    suite = load_suite(args.suite).with_profile(args.profile)
    if args.timeout is not None:
        suite = replace(suite, timeout_s=args.timeout)
    if args.only_datasets:
        unknown = [d for d in args.only_datasets if d not in suite.datasets]
        if unknown:
            print(f"error: {suite.source}: datasets: no data set {', '.join(unknown)} "
                  f"(the suite has {', '.join(suite.datasets)})", file=sys.stderr)
            return EXIT_BAD_INPUT
        suite = replace(suite, datasets={d: suite.datasets[d] for d in args.only_datasets})
    out = args.out
    if args.search:
        if args.seeds:
            print(f"error: --seeds: not with --search (the search runs on {suite.source}'s "
                  "search.seed)", file=sys.stderr)
            return EXIT_BAD_INPUT
        parent, out = suite, args.out / SEARCH_DIR
        suite, borrowed, own_scores = _borrow_own_rows(
            parent, suite.search_suite(args.only_models), args.out, args.data_root)
    else:
        suite = _with_search_choices(suite, args.out)
    plan = suite.runs(seeds=args.seeds, models=args.only_models, data_root=args.data_root)
    if args.dry_run:
        from recbole_sasrec_ext.benchmark.dry_run import check_plan

        prefix = default_command_prefix()
        if not os.environ.get(RUN_CMD_ENV, "").strip():  # the runs are the plugin's own
            check_plan(plan, args.out if args.out.is_dir() else None)  # as each run would
        for spec in plan:  # a suite's thread count as the runner sets it
            threads = f"OMP_NUM_THREADS={spec.threads} " if spec.threads else ""
            print(threads + command_text([*prefix, *spec.args()]))
        print(
            f"{suite.name}{_profile_text(suite.profile)}: {plan_summary(plan)}, "
            f"timeout {suite.timeout_s:g} s each",
            file=sys.stderr,
        )
        return EXIT_OK
    print(
        f"{suite.name}{_profile_text(suite.profile)} ({suite.source}): {plan_summary(plan)} "
        f"into {out}",
        file=sys.stderr,
    )
    summary = run_suite(
        suite,
        out,
        seeds=args.seeds,
        models=args.only_models,
        max_runs=args.max_runs,
        data_root=args.data_root,
        command_line=command_line,
        jobs=args.jobs,
        validation_only=bool(args.search),
    )
    from recbole_sasrec_ext.benchmark.report import write_report

    written = write_report(out.resolve())
    print(f"report: {', '.join(str(p) for p in written)}", file=sys.stderr)
    if args.search:
        csv = out / results.CSV_NAME
        rows = results.read_rows(csv) if csv.is_file() else []
        content = choose(suite.search, [*rows, *borrowed], own_scores)
        path = write_choices(out, content)
        print(f"search: settings chosen for {len(content['models'])} of "
              f"{len(suite.search.dropout_keys)} models ({path}); models not listed there are "
              "still running or failed", file=sys.stderr)
    print(
        f"finished: {summary.ran} run now ({summary.failed} failed), {summary.skipped} already "
        f"done, of {summary.planned} planned",
        file=sys.stderr,
    )
    if summary.stopped_early:
        print(
            f"stopped after --max-runs {args.max_runs}: rerun the same command to continue",
            file=sys.stderr,
        )
    if summary.failed:
        print(
            f"{summary.failed} runs failed: see 'Failed runs' in results.md and the logs",
            file=sys.stderr,
        )
    return EXIT_OK


def _with_search_choices(suite: Suite, out: Path) -> Suite:
    """``suite`` with the settings its validation search chose (``out/search/chosen.json``)."""
    choices = read_choices(out) if suite.search is not None else None
    if suite.search is None:
        return suite
    if not choices:
        print(f"{suite.name}: validation search not run (no {out / SEARCH_DIR / CHOSEN_NAME}): "
              "every model keeps its settings", file=sys.stderr)
        return suite
    metric = str(suite.common.get("valid_metric", "valid_metric"))
    note = choices_note(suite.search, choices, metric)
    print(f"{suite.name}: {note}", file=sys.stderr)
    known = {m: s for m, s in choices.items() if m in suite.models}
    overrides = without_own_values(known, lambda model: _own_values(suite, model))
    same = sorted(m for m in known if not overrides[m])
    if same:
        print(f"{suite.name}: the search chose {', '.join(same)}'s own settings: their runs keep "
              "their keys (rows already made stay done)", file=sys.stderr)
    return replace(with_choices(suite, overrides), notes=(*suite.notes, note))


def _borrow_own_rows(
    parent: Suite, search: Suite, out: Path, data_root: Path | None
) -> tuple[Suite, list[results.Row], dict[str, float]]:
    """The search less its settings that are a model's own where ``out``'s results already hold
    the model's finished runs on the search seed: those runs' rows (relabelled as the setting's)
    stand for the setting, whose runs would repeat them (the same config, the same numbers).
    Also each searched model's own validation score from such a run (one data set), for
    :func:`choose`: an own setting off the grid competes with the grid's points."""
    path = out / results.CSV_NAME
    if not path.is_file():
        return search, [], {}
    done = {(r["model"], r["dataset"], int(r["seed"]), r["config_hash"]): r
            for r in results.read_rows(path) if r["status"] == results.Status.OK.value}
    own: dict[str, list[dict]] = {}
    own_rows: dict[str, list[results.Row | None]] = {}
    for model in dict.fromkeys(v.model for v in search.variants.values()):
        own[model] = _own_values(parent, model)
        specs = parent.runs(seeds=[search.search.seed], models=[model], data_root=data_root)
        own_rows[model] = [done.get(spec.key) for spec in specs]
    own_scores = {model: float(rows[0]["best_valid_score"]) for model, rows in own_rows.items()
                  if len(rows) == 1 and rows[0] and rows[0].get("best_valid_score")}
    kept, borrowed = {}, []
    for label, variant in search.variants.items():
        rows = own_rows[variant.model]
        if own_overrides(variant.settings, own[variant.model]) or not all(rows):
            kept[label] = variant
            continue
        borrowed += [{**row, "model": label} for row in rows]
        print(f"search: {label} is {variant.model}'s own setting: its finished seed "
              f"{search.search.seed} runs in {path} stand for it (not run again)", file=sys.stderr)
    return replace(search, variants=kept), borrowed, own_scores


def _own_values(suite: Suite, model: str) -> list[dict]:
    """``model``'s final config values on each data set of ``suite`` (its runs' settings)."""
    from recbole_sasrec_ext.config.plugin_config import Config

    return [
        dict(Config(suite.model_classes.get(model) or model, dataset,
                    config_dict=suite.overrides(model, dataset)).final_config_dict)
        for dataset in suite.datasets
    ]


def _profile_text(profile: str) -> str:
    return f" (profile {profile})" if profile else ""
