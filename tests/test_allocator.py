"""glibc's allocator tuned for training (recbole_sasrec_ext/common/allocator.py): buffers below
32 MiB come from the heap instead of fresh ``mmap`` pages, and freed memory stays in the process."""

import ctypes
import json
import os
import subprocess
import sys
import textwrap

import pytest

from recbole_sasrec_ext.common import allocator
from recbole_sasrec_ext.common.errors import PluginError

# A fresh process: tune (or not), allocate 64 blocks of 1 MiB, free them, read glibc's mallinfo2.
PROBE = textwrap.dedent(
    """
    import ctypes, json
    from recbole_sasrec_ext.common import allocator
    tuned = allocator.tune_for_training()
    libc = ctypes.CDLL(None)
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = libc.mallinfo2()
    blocks = [libc.malloc(1 << 20) for _ in range(64)]
    during = libc.mallinfo2()
    for block in reversed(blocks):
        libc.free(block)
    after = libc.mallinfo2()
    print(json.dumps({"tuned": tuned, "mmapped": during.hblks - before.hblks,
                      "heap_after_mib": after.arena >> 20}))
    """
)


def _has_mallinfo2() -> bool:
    try:
        ctypes.CDLL(None).mallinfo2  # noqa: B018
    except (OSError, AttributeError):
        return False
    return allocator._glibc_mallopt() is not None


def _probe(**env) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.pop(allocator.OPT_OUT_VARIABLE, None)
    out = subprocess.run([sys.executable, "-c", PROBE], env={**environ, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not _has_mallinfo2(), reason="glibc >= 2.33 only")
def test_tuned_blocks_come_from_the_heap_and_stay_there():
    tuned = _probe()
    assert tuned["tuned"] is True
    assert tuned["mmapped"] == 0  # 1 MiB is below the fixed 32 MiB threshold
    assert tuned["heap_after_mib"] >= 64  # freed, not handed back to the kernel
    system = _probe(RECBOLE_SASREC_EXT_ALLOCATOR="system")
    assert system["tuned"] is False
    assert system["mmapped"] == 64  # glibc's default: each 1 MiB block its own mmap
    assert system["heap_after_mib"] < 64
    assert _probe(MALLOC_ARENA_MAX="2")["tuned"] is False  # the user's own MALLOC_* settings win


def test_the_choice_is_read_from_the_environment():
    assert allocator.wanted({})
    assert allocator.wanted({"RECBOLE_SASREC_EXT_ALLOCATOR": "tuned"})
    assert not allocator.wanted({"RECBOLE_SASREC_EXT_ALLOCATOR": " System "})
    assert not allocator.wanted({"MALLOC_TRIM_THRESHOLD_": "0"})
    with pytest.raises(PluginError, match=r"RECBOLE_SASREC_EXT_ALLOCATOR='sytem': expected one "
                                          r"of tuned, system"):
        allocator.wanted({"RECBOLE_SASREC_EXT_ALLOCATOR": "sytem"})


def test_a_bad_choice_is_one_line_exit_2_before_anything_is_written(tmp_path):
    env = dict(os.environ, RECBOLE_SASREC_EXT_ALLOCATOR="sytem")
    result = subprocess.run(
        [sys.executable, "-m", "recbole_sasrec_ext", "--model", "SASRec", "--dataset", "ml-100k",
         "--epochs=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: environment variable RECBOLE_SASREC_EXT_ALLOCATOR='sytem': expected one of "
        "tuned, system"
    ]
    assert list(tmp_path.iterdir()) == []
