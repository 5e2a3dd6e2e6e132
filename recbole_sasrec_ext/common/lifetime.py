"""Process lifetime: a launched worker dies with its parent (``kill -9`` of the launcher
included), and SIGTERM is handled like Ctrl-C.

* :func:`die_with_parent`: Linux's ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` and, everywhere, a daemon
  thread that polls the parent's pid: when the process that started this one is gone (the
  worker was re-parented), the worker exits at once instead of holding the cores as an orphan;
* :func:`sigterm_as_interrupt`: SIGTERM raises :class:`Terminated`, a ``KeyboardInterrupt``, so a
  terminated run unwinds (process group stopped, files closed) as an interrupted one does and
  exits 143 (128 + SIGTERM, as a shell reports it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

#: linux/prctl.h
_PR_SET_PDEATHSIG = 1
#: Seconds between two looks at the parent's pid.
POLL_S = 0.2
#: Exit code of a process ended by SIGTERM (as a shell reports it).
EXIT_TERMINATED = 128 + int(signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def sigterm_as_interrupt() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def die_with_parent(parent: int | None = None) -> None:
    """End this process as soon as ``parent`` (default: the current parent) is gone."""
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(EXIT_TERMINATED)
    threading.Thread(target=_watch, args=(parent,), name="die-with-parent", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(EXIT_TERMINATED)  # orphaned: the launcher was killed
