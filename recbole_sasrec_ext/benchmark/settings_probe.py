"""``python -m recbole_sasrec_ext.benchmark.settings_probe``: the settings hash
(config/settings_hash.py) that each run's command line resolves to with the code as it is now.

The suite runner asks it before skipping finished rows: a row whose run reported another hash was
made before a default changed, and is run again. Input on stdin: a JSON list of argument lists
(``RunSpec.args()``); output, as the last line of stdout: a JSON list of hashes, ``null`` where
that command's config cannot be built. A process of its own because building a RecBole ``Config``
imports torch and sets ``CUDA_VISIBLE_DEVICES``, which the runner and its runs must not inherit.
"""

from __future__ import annotations

import json
import sys


def probe(argvs: list[list[str]]) -> list[str | None]:
    """The settings hash of each argument list, or None where its config cannot be built."""
    from recbole_sasrec_ext.apps.cli import parse_args
    from recbole_sasrec_ext.config.plugin_config import Config
    from recbole_sasrec_ext.config.settings_hash import settings_hash

    hashes: list[str | None] = []
    for argv in argvs:
        try:
            args, overrides = parse_args(argv)
            hashes.append(settings_hash(Config(args.model, args.dataset, config_dict=overrides)))
        except (Exception, SystemExit):  # noqa: BLE001 - the runner then keeps the row as it is
            hashes.append(None)
    return hashes


def main() -> int:
    argvs = json.load(sys.stdin)
    print(json.dumps(probe(argvs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
