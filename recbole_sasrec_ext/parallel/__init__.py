"""Data-parallel training and exact sharded evaluation on ``torch.distributed`` (docs/scaling.md).

* :mod:`.group`: the process group (from ``torchrun``'s environment; nccl on GPUs, gloo on CPU);
* :mod:`.launch`: ``run_recbole.py --nproc=N`` starts N processes with PyTorch's launcher;
* :mod:`.sharding`: each rank's part of every training batch and its evaluation batches;
* :mod:`.ddp`: ``DistributedDataParallel`` around a model's ``calculate_loss``;
* :mod:`.evaluation`: evaluation gathered from every rank, equal to one process's.
"""

from recbole_sasrec_ext.parallel.group import (
    ProcessGroupInfo,
    check_launcher_keys,
    check_nproc,
    current,
    from_env,
)

__all__ = ["ProcessGroupInfo", "check_launcher_keys", "check_nproc", "current", "from_env"]
