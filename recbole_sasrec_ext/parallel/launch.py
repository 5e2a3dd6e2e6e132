"""``run_recbole.py --nproc=N``: start N processes on this machine with PyTorch's own launcher
(the elastic agent ``torchrun`` runs), each running the same command without ``--nproc``.

The processes get what ``torchrun --standalone --nproc_per_node=N`` gives them (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, a free ``MASTER_PORT``), so both launches run
the same code path; ``OMP_NUM_THREADS=1`` unless the user set it (as torchrun does). When one
process fails the launcher stops the others, and the launch exits with the first failure's code.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from recbole_sasrec_ext.common.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED
from recbole_sasrec_ext.common.lifetime import EXIT_TERMINATED, Terminated

#: The launcher's own log (process start and stop notices); the processes' errors are printed
#: by the processes themselves.
_LAUNCHER_LOGGER = "torch.distributed.elastic"


def _package_root() -> str:
    return str(Path(__file__).resolve().parent.parent.parent)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m recbole_sasrec_ext *argv`` in ``nproc`` processes; return the exit code
    (0, or the code of the process that failed first)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",  # a free port, as torchrun --standalone
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    saved = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "PYTHONPATH")}
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    path = [_package_root()] + ([saved["PYTHONPATH"]] if saved["PYTHONPATH"] else [])
    os.environ["PYTHONPATH"] = os.pathsep.join(path)  # the processes import this copy
    logging.getLogger(_LAUNCHER_LOGGER).setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)("-m", "recbole_sasrec_ext", *argv)
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else EXIT_FAILED
    except (KeyboardInterrupt, SignalException) as exc:  # the launcher stopped the processes
        if isinstance(exc, Terminated) or getattr(exc, "sigval", None) == signal.SIGTERM:
            print("error: terminated (SIGTERM)", file=sys.stderr)
            return EXIT_TERMINATED
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return 0
