"""``--dry-run`` of a suite: each run's configuration resolved and checked exactly as the run
itself resolves it (the same command-line parsing, ``Config`` and checks, model keys included),
and its data set's ``.inter`` file found, without training or writing anything."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

from recbole_sasrec_ext.benchmark.suite import RunSpec
from recbole_sasrec_ext.common.errors import PluginError


def check_run(spec: RunSpec, out_dir: Path | None = None) -> None:
    """Raise :class:`PluginError` (one line, naming the run) if ``spec`` would fail on its input.

    The run's working folder is ``out_dir`` (where a relative path of the run is resolved)."""
    from recbole_sasrec_ext.apps.cli import parse_args
    from recbole_sasrec_ext.common.argv import swapped_argv
    from recbole_sasrec_ext.config.plugin_config import Config
    from recbole_sasrec_ext.config.validation import strict_model_keys

    where = f"run {spec.model} on {spec.dataset} seed {spec.seed}"
    args, overrides = parse_args(spec.args())
    overrides.pop("nproc", None)
    cwd = os.getcwd()
    try:
        if out_dir is not None and out_dir.is_dir():
            os.chdir(out_dir)
        with warnings.catch_warnings(), swapped_argv(sys.argv[:1]), strict_model_keys():
            warnings.simplefilter("ignore")
            config = Config(model=args.model, dataset=args.dataset, config_dict=overrides)
        inter = Path(config["data_path"]) / f"{config['dataset']}.inter"
        if not inter.is_file():
            raise PluginError(
                f"dataset '{config['dataset']}' not found: looked for {inter.resolve()}"
            )
    except PluginError as exc:
        raise PluginError(f"{where}: {' '.join(str(exc).split())}") from None
    except (ValueError, NotImplementedError) as exc:  # RecBole's own checks, as run() reports
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PluginError(f"{where}: bad configuration: {first}") from None
    finally:
        os.chdir(cwd)


def check_plan(plan: Iterable[RunSpec], out_dir: Path | None = None) -> int:
    """Check every run of ``plan`` (once per model, data set and overrides: the seed changes
    nothing checked); the number of distinct configurations checked."""
    seen = set()
    for spec in plan:
        key = (spec.model_class or spec.model, spec.dataset, spec.config_hash,
               str(spec.overrides.get("data_path")))
        if key not in seen:
            seen.add(key)
            check_run(spec, out_dir)
    return len(seen)
