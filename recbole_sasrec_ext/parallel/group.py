"""The process group of a multi-process run: who this process is (from the launcher's
environment), which backend and device it uses, and the one place the group starts and ends.

``torchrun`` and ``run_recbole.py --nproc=N`` (:mod:`recbole_sasrec_ext.parallel.launch`) start
every process with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``
and ``MASTER_PORT``; the group is joined through ``env://``, so the same code runs on one machine
and on several. Backend: ``nccl`` when the run's device is a GPU, ``gloo`` on the CPU.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from recbole_sasrec_ext.common.errors import PluginError

#: How long a collective (and joining the group) may wait for the other processes before the
#: run fails instead of hanging (a crashed process is also caught by the launcher, which then
#: stops the others).
GROUP_TIMEOUT = timedelta(minutes=10)
#: Environment variables every launcher of the plugin's multi-process runs sets.
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
#: RecBole's multi-process keys: set by the launcher, never by the user (RecBole's own
#: ``Config`` would start an NCCL group over ``tcp://ip:port`` for them).
LAUNCHER_KEYS = ("local_rank", "world_size", "single_spec", "offset", "ip", "port")


@dataclass(frozen=True)
class ProcessGroupInfo:
    """This process's place in a multi-process run."""

    rank: int  # 0 .. world_size - 1, over every machine
    local_rank: int  # 0 .. local_world_size - 1, on this machine (its GPU index)
    world_size: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes logs, checkpoints and the summary."""
        return self.rank == 0

    @property
    def reports_errors(self) -> bool:
        """One process per machine prints bad-input errors (every process finds the same)."""
        return self.local_rank == 0


def from_env(environ: Mapping[str, str] | None = None) -> ProcessGroupInfo | None:
    """The launcher's description of this process, or None when no launcher started it.

    Raises
    ------
    PluginError
        If only some of :data:`LAUNCH_VARIABLES` are set, or they are not consistent.
    """
    env = os.environ if environ is None else environ
    present = [name for name in LAUNCH_VARIABLES if name in env]
    if not present:
        return None
    missing = [name for name in LAUNCH_VARIABLES if name not in env]
    if missing:
        raise PluginError(
            f"multi-process run: {', '.join(present)} set but {', '.join(missing)} not; "
            "start the processes with torchrun or run_recbole.py --nproc=N"
        )
    try:
        rank, local_rank, world = (int(env[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
        local_world = int(env.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        raise PluginError(
            "multi-process run: RANK, LOCAL_RANK, WORLD_SIZE must be integers"
        ) from None
    if not (0 <= rank < world and 0 <= local_rank < local_world <= world):
        raise PluginError(
            f"multi-process run: RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world}, "
            f"LOCAL_WORLD_SIZE={local_world} are not consistent"
        )
    return ProcessGroupInfo(rank, local_rank, world, local_world)


def check_launcher_keys(external: Mapping) -> None:
    """Raise if the user set one of RecBole's multi-process keys (:data:`LAUNCHER_KEYS`)."""
    given = [key for key in LAUNCHER_KEYS if key in external]
    if given:
        raise PluginError(
            f"config key '{given[0]}' is set by the launcher, not by the user: start several "
            "processes with run_recbole.py --nproc=N or torchrun (docs/scaling.md)"
        )


def parse_nproc(value) -> int:
    """``nproc`` (an int or its text) as an int >= 1."""
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PluginError(f"config key 'nproc' = {value!r} is not allowed: expected an int >= 1")
    return value


def check_nproc(value, info: ProcessGroupInfo | None) -> int:
    """``nproc`` (:func:`parse_nproc`). Outside a launched run it must be 1 (``run()`` trains in
    its own process); inside, 1 or the number of processes the launcher started on this machine."""
    value = parse_nproc(value)
    if info is None and value > 1:
        raise PluginError(
            f"config key 'nproc' = {value}: this call trains in one process; start {value} "
            f"with run_recbole.py --nproc={value} (on the command line) or torchrun"
        )
    if info is not None and value not in (1, info.local_world_size):
        raise PluginError(
            f"config key 'nproc' = {value}, but the launcher started {info.local_world_size} "
            "processes on this machine: leave nproc out under torchrun"
        )
    return value


def claim_gpus(info: ProcessGroupInfo) -> None:
    """Before RecBole's ``Config`` (which rewrites ``CUDA_VISIBLE_DEVICES`` from ``gpu_id``):
    start CUDA with the GPUs the launch made visible, so local rank r can use GPU r."""
    if torch.cuda.is_available():
        torch.cuda.device_count()


def device_for(info: ProcessGroupInfo, device: torch.device) -> torch.device:
    """This process's device: ``cuda:<local_rank>`` when the run's device is a GPU, else the CPU.

    Raises
    ------
    PluginError
        If the machine has fewer GPUs than processes (NCCL needs one GPU per process).
    """
    if device.type != "cuda":
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if info.local_world_size > count:
        raise PluginError(
            f"{info.local_world_size} processes on this machine need {info.local_world_size} "
            f"GPUs (nccl: one per process), {count} visible; run fewer processes or set "
            "--use_gpu=False (gloo on the CPU)"
        )
    torch.cuda.set_device(info.local_rank)
    return torch.device("cuda", info.local_rank)


def backend_for(device: torch.device) -> str:
    """``nccl`` for GPUs, ``gloo`` for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def start(info: ProcessGroupInfo, device: torch.device) -> bool:
    """Join the process group (``env://``) unless the caller already did; True if this call
    started it (then :func:`stop` ends it)."""
    if dist.is_initialized():
        if dist.get_world_size() != info.world_size or dist.get_rank() != info.rank:
            raise PluginError("the process group already started differs from RANK/WORLD_SIZE")
        return False
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(
        backend_for(device), init_method="env://", rank=info.rank, world_size=info.world_size,
        timeout=GROUP_TIMEOUT, **kwargs,
    )
    return True


def stop(started: bool, finished: bool) -> None:
    """End the process group if :func:`start` started it.

    ``finished``: the run ended normally on this rank. The ranks then meet at a barrier first, so
    that no rank ends the group while another still uses it; after a failure there is no barrier
    (the other ranks may be gone; the launcher stops them). Garbage is collected before the group
    ends, so that nothing still referring to it is freed later, during interpreter shutdown.
    """
    if not (started and dist.is_initialized()):
        return
    gc.collect()
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def current() -> ProcessGroupInfo | None:
    """The running group as :class:`ProcessGroupInfo` (None in a one-process run)."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return from_env()


def configure(config, info: ProcessGroupInfo) -> torch.device:
    """Record this process's place in ``config`` (RecBole's keys: ``world_size``, ``local_rank``,
    ``offset`` = rank - local_rank, ``nproc`` = processes on this machine; ``single_spec`` stays
    True, so RecBole's own multi-process code, which assumes NCCL and one GPU per process, stays
    off: the plugin runs DDP itself) and set its device; returns the device.

    Raises
    ------
    PluginError
        If ``train_batch_size`` is below the number of processes, or GPUs are missing.
    """
    check_nproc(config["nproc"] if config["nproc"] is not None else 1, info)
    batch = config["train_batch_size"]
    if isinstance(batch, int) and batch < info.world_size:
        raise PluginError(
            f"config key 'train_batch_size' = {batch} is below the number of processes "
            f"({info.world_size}): each process takes train_batch_size / {info.world_size} rows"
        )
    device = device_for(info, torch.device(config["device"]))
    config["device"] = device
    config["world_size"] = info.world_size
    config["local_rank"] = info.local_rank
    config["offset"] = info.rank - info.local_rank
    config["nproc"] = info.local_world_size
    config["single_spec"] = True
    return device
