"""Split feasibility: how many users the chosen split can evaluate, checked before training so that
a data set where no user has enough interactions is an error, not a crash after the last epoch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recbole_sasrec_ext.common.errors import PluginError


@dataclass(frozen=True)
class SplitReport:
    """Users of a data set and how many of them have a validation / test example."""

    dataset: str
    split: str
    users: int
    valid_users: int
    test_users: int

    def message(self) -> str:
        """One line for the log."""
        return (
            f"split {self.split} of '{self.dataset}': {self.users} users, "
            f"{self.valid_users} with a validation example ({self.users - self.valid_users} "
            f"without), {self.test_users} with a test example "
            f"({self.users - self.test_users} without: too few interactions)"
        )


def _users(split_dataset) -> int:
    if split_dataset is None or len(split_dataset) == 0:
        return 0
    return int(np.unique(split_dataset.inter_feat[split_dataset.uid_field].numpy()).size)


def expected_phases(split) -> set[str]:
    """The evaluation phases a split should fill: ``{'validation', 'test'}`` or one of them
    (leave-one-out ``valid_only`` / ``test_only``, or a zero ratio of a random split)."""
    both = {"validation", "test"}
    if isinstance(split, dict) and "LS" in split:
        return {"valid_and_test": both, "valid_only": {"validation"}, "test_only": {"test"}}.get(
            split["LS"], both
        )
    if isinstance(split, dict) and "RS" in split and isinstance(split["RS"], (list, tuple)):
        ratios = [*split["RS"], 0, 0][1:3]
        return {phase for phase, ratio in zip(("validation", "test"), ratios) if ratio}
    return both


def check_split(config, dataset, built) -> SplitReport:
    """Count the users of each evaluation split of ``built`` (RecBole's ``dataset.build()``);
    raise :class:`PluginError` when the validation or the test split is empty."""
    valid_ds = built[1] if len(built) > 2 else None
    test_ds = built[-1] if len(built) > 1 else None
    split = config["eval_args"]["split"]
    name = "/".join(f"{k}:{v}" for k, v in split.items()) if isinstance(split, dict) else str(split)
    users = max(int(dataset.user_num) - 1, 0) if dataset.uid_field else len(dataset)
    report = SplitReport(config["dataset"], name, users, _users(valid_ds), _users(test_ds))
    expected = expected_phases(split)
    for phase, count in (("test", report.test_users), ("validation", report.valid_users)):
        if count == 0 and phase in expected:
            raise PluginError(
                f"data set '{config['dataset']}': no user has a {phase} example under split "
                f"{name} ({report.users} users; each needs more interactions, e.g. at least 4 "
                f"per user for leave-one-out valid_and_test)"
            )
    return report
