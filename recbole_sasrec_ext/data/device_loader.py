"""Training batches that live on the model's device.

RecBole's ``TrainDataLoader`` builds every batch on the host (``dataset[index]`` → ``Interaction``)
and the trainer copies it to the device: per batch, Python over fields on the host, a collate and
one host→device copy per field. :class:`DeviceTrainDataLoader` moves the training rows of a
:class:`~recbole_sasrec_ext.data.FullSequenceDataset` to the device once; an epoch is a seeded
permutation of the row indices (drawn once per epoch, RecBole's permutation, copied to the device)
and each batch is one ``index_select`` per field. It is still a RecBole training data loader (a
``TrainDataLoader`` subclass) that yields ``Interaction`` objects, so RecBole's ``Trainer`` and user
code iterate it unchanged.

Used only where RecBole's loader would do nothing else per batch: no training negatives
(``train_neg_sample_args: ~``), no data transform, one process (``single_spec``).

RecBole's own GRU4Rec and SASRec train through it too when ``length_buckets`` > 0 or
``length_split`` is on: their rows are RecBole's prefix samples (one target each) and each batch is
cut after its longest sequence (their output at the last real position does not depend on the
padding columns; tests/test_recbole_buckets.py). On S3Rec Beauty 83 % of their right-padded
positions are padding. ``length_split`` keeps RecBole's random batches and computes each in parts
of similar length (:meth:`DeviceTrainDataLoader.length_parts`): the same gradient, less padding.
RecBole's BERT4Rec takes ``length_split`` too: its batch goes through RecBole's own mask transform
first (the same random draws, in the same order, as RecBole's loader), then each part is cut after
its longest sequence and before its first used mask slot, and weighted by its masked targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.data.full_sequence_dataset import TARGET_LIST_FIELD, FullSequenceDataset

#: RecBole models whose training output is the same when a batch is cut after its longest
#: sequence (right padding, causal or masked, read at the last real position), so
#: ``length_buckets`` may batch them by length and ``length_split`` may compute a batch in parts.
TRIMMABLE_RECBOLE_MODELS = frozenset({"GRU4Rec", "SASRec"})

#: RecBole models that ``length_split`` may compute in parts: the trimmable ones, and BERT4Rec,
#: whose bidirectional attention masks the padding keys and whose loss is a mean over the masked
#: positions of the batch (:class:`BatchPart` weighs its parts by those).
SPLITTABLE_RECBOLE_MODELS = TRIMMABLE_RECBOLE_MODELS | {"BERT4Rec"}

#: The data transform each splittable RecBole model trains with (RecBole's yaml), applied by the
#: device loader to every batch before it is split.
OWN_TRANSFORM = {"BERT4Rec": "mask_itemseq"}


def length_class_rows(lengths: torch.Tensor) -> list[torch.Tensor]:
    """The rows of a batch grouped by length class — 1, 2, 3–4, 5–8, ... items (powers of two) —
    as index tensors, shortest class first: a part cut after its longest sequence is never more
    than half padding. ``lengths`` (B,) holds each row's number of items (0 counts as 1)."""
    lengths = lengths.clamp(min=1).double()  # (B,)
    length_class = torch.ceil(torch.log2(lengths)).long()  # (B,) 0, 1, 2, 2, 3, ...
    return [torch.nonzero(length_class == value).squeeze(1)  # (b,) each
            for value in torch.unique(length_class).tolist()]


@dataclass(frozen=True)
class BatchPart:
    """One part of a training batch: its rows and its share of the batch's loss (the part's
    training targets / the batch's: rows for the models that average their loss over rows,
    masked positions for BERT4Rec, so the parts' losses times their shares sum to the batch's
    loss, and so do the gradients)."""

    rows: Interaction
    share: float


def device_loader_applies(config, dataset) -> bool:
    """Whether RecBole's training loader would only slice rows for ``dataset`` (then the device
    loader yields the same batches, built on the device)."""
    neg = config["train_neg_sample_args"]
    no_negatives = neg is None or neg.get("distribution", "none") == "none"
    one_process = no_negatives and bool(config["single_spec"])
    if isinstance(dataset, FullSequenceDataset):
        return bool(config["device_train_loader"]) and one_process and config["transform"] is None
    if not (one_process and _recbole_sequential(config)):
        return False
    name = config.model_class.__name__
    if config["length_buckets"]:
        return name in TRIMMABLE_RECBOLE_MODELS and config["transform"] is None
    own_transform = config["transform"] == OWN_TRANSFORM.get(name)
    return (bool(config["length_split"]) and name in SPLITTABLE_RECBOLE_MODELS
            and own_transform)


def _recbole_model(model_class: type) -> bool:
    return model_class.__module__.startswith("recbole.")


def _recbole_sequential(config) -> bool:
    """Whether the run trains one of RecBole's own sequential models."""
    return config["MODEL_TYPE"] == ModelType.SEQUENTIAL and _recbole_model(config.model_class)


def check_length_buckets(config, model_class) -> None:
    """``length_buckets`` > 0 with one of RecBole's models that cannot be cut after the longest
    sequence, or ``length_split`` on for another RecBole model or without the device loader, is a
    :class:`PluginError` naming the key (the plugin's models check ``length_split`` with their
    own ``CONFIG_RULES``)."""
    recbole = _recbole_model(model_class)
    if config.get("length_buckets") and recbole and (
            model_class.__name__ not in TRIMMABLE_RECBOLE_MODELS):
        raise PluginError(
            f"config key 'length_buckets' = {config['length_buckets']} is not available for "
            f"RecBole's {model_class.__name__} (only {', '.join(sorted(TRIMMABLE_RECBOLE_MODELS))}"
            " and the plugin's models); use length_buckets: 0"
        )
    if not config.get("length_split") or not recbole:  # the plugin's models: their own rules
        return
    name = model_class.__name__
    if name not in SPLITTABLE_RECBOLE_MODELS:
        raise PluginError(
            f"config key 'length_split' = True is not available for RecBole's {name} (only "
            f"RecBole's {', '.join(sorted(SPLITTABLE_RECBOLE_MODELS))} and the plugin's SASRec);"
            " use length_split: False"
        )
    neg = config.get("train_neg_sample_args")
    if neg is not None and neg.get("distribution", "none") != "none":
        raise PluginError(
            "config key 'length_split' = True needs 'train_neg_sample_args' = None (CE, no "
            "training negatives): the split batches are built by the device loader"
        )
    if config.get("transform") != OWN_TRANSFORM.get(name):
        raise PluginError(
            f"config key 'length_split' = True cannot be combined with 'transform' = "
            f"{config['transform']!r} for RecBole's {name} (it splits batches made with "
            f"transform = {OWN_TRANSFORM.get(name)!r})"
        )


class DeviceTrainDataLoader(TrainDataLoader):
    """RecBole training loader whose rows are tensors on ``device``.

    Parameters (RecBole's loader signature)
    ----------
    config : recbole Config
        Reads ``train_batch_size``, ``seed`` (RecBole's loader generator) and ``device``.
    dataset : Dataset
        The training split; every field of its ``inter_feat`` is moved to the device once.
    sampler : unused (no training negatives)
    shuffle : bool
        A new permutation every epoch, the one RecBole's loader would draw (same seed, same
        generator calls): the plugin trains on the same batches as with RecBole's loader.
    """

    def __init__(self, config, dataset, sampler, shuffle=False):
        super().__init__(config, dataset, sampler, shuffle=shuffle)
        self.device = torch.device(config["device"])
        self._rows: dict[str, torch.Tensor] | None = None
        self.length_buckets = int(config["length_buckets"] or 0)
        self.length_split = bool(config["length_split"])
        self.length_field = config["ITEM_LIST_LENGTH_FIELD"]
        self._targets: torch.Tensor | None = None
        # RecBole's prefix rows: one target each, lists cut here (the plugin's models cut their own)
        self.prefix_rows = not isinstance(dataset, FullSequenceDataset)
        self.list_suffix = config["LIST_SUFFIX"]
        # RecBole's mask transform (BERT4Rec), applied to each batch as RecBole's collate does
        self.transformed = config["transform"] is not None
        self.mask_index_field = config["MASK_INDEX"] if self.transformed else None
        self.mask_slot_fields = ((config["MASK_INDEX"], config["POS_ITEMS"], config["NEG_ITEMS"])
                                 if self.transformed else ())  # (k, mask_len) each

    # --- data on the device --------------------------------------------------------------
    def to(self, device) -> DeviceTrainDataLoader:
        """Keep the rows on ``device`` (moved lazily, at the next iteration)."""
        device = torch.device(device)
        if device != self.device:
            self.device = device
            self._rows = None
            self._targets = None
        return self

    def rows(self) -> dict[str, torch.Tensor]:
        """Every field of the training rows, on the device (moved at first use)."""
        if self._rows is None:
            feat = self._dataset.inter_feat
            self._rows = {field: feat[field].to(self.device) for field in feat.columns}
        return self._rows

    # --- epochs ----------------------------------------------------------------------------
    def epoch_order(self) -> torch.Tensor:
        """Row order of the next epoch, on the device. Drawn from RecBole's loader generator
        (seeded with ``seed``) exactly as ``torch.utils.data.DataLoader`` draws it (a base seed,
        then ``randperm``; ``__iter__`` draws the sampler's trailing permutation at the end), so
        the batches are RecBole's, in RecBole's order."""
        n = self.sample_size
        # DataLoader's base seed
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        order = torch.randperm(n, generator=self.generator)  # (n,) on the host, once per epoch
        return order.to(self.device)

    def __len__(self) -> int:
        return (self.sample_size + self.step - 1) // self.step

    def batch_of(self, index: torch.Tensor) -> Interaction:
        """The training rows ``index`` (k,) as one batch: one ``index_select`` per field."""
        index = index.to(self.device)  # (k,)
        batch = {field: values.index_select(0, index) for field, values in self.rows().items()}
        if self.transformed:  # RecBole's collate: dataset[index], then the transform
            transformed = self.transform(self._dataset, Interaction(batch))
            batch = {field: transformed[field] for field in transformed.interaction}
        if self.prefix_rows and (self.length_buckets or self.length_split) and (
                self.length_field in batch):
            batch = self._cut(batch)
        return Interaction(batch)

    def _cut(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``batch`` with its sequence lists cut after its longest sequence and, with the mask
        transform, its mask slots (left-padded; a slot trains only where its index is > 0, as
        BERT4Rec's loss reads them) cut before the first slot any row uses."""
        width = max(int(batch[self.length_field].max()), 1)  # the longest sequence
        cut = {field: values[:, :width].contiguous() if field.endswith(self.list_suffix)
               and values.dim() == 2 else values for field, values in batch.items()}  # (k, width)
        if self.mask_index_field in cut:
            used = (cut[self.mask_index_field] > 0).any(0)  # (mask_len,)
            first = int(used.nonzero()[0]) if bool(used.any()) else used.numel() - 1
            cut = {field: values[:, first:].contiguous() if field in self.mask_slot_fields
                   else values for field, values in cut.items()}  # (k, mask_len - first)
        return cut

    def _weights(self, batch: Interaction) -> torch.Tensor:
        """Each row's weight in its batch's loss (k,): its masked targets under the mask
        transform (BERT4Rec averages over those), else 1 (a mean over rows)."""
        if self.mask_index_field in batch:
            return (batch[self.mask_index_field] > 0).sum(1)  # (k,)
        return torch.ones(len(batch), dtype=torch.long, device=self.device)  # (k,)

    def length_parts(self, batch: Interaction) -> list[BatchPart]:
        """``batch`` as the parts its training step computes.

        Without ``length_split``: the batch itself. With it (RecBole's prefix rows): the rows
        grouped by length class — lengths 1, 2, 3–4, 5–8, ... (powers of two) — each part cut
        after its own longest sequence, so no part is more than half padding; its share is its
        training targets / the batch's (rows, or masked positions under the mask transform); a
        part without targets is left out. The batch and its order of rows are RecBole's; only the
        padding computed changes (exact for models whose outputs at real positions ignore the
        padding columns and whose loss is a mean over targets: :data:`SPLITTABLE_RECBOLE_MODELS`).
        """
        if not (self.length_split and self.prefix_rows and self.length_field in batch):
            return [BatchPart(batch, 1.0)]
        weights = self._weights(batch)  # (k,)
        total = int(weights.sum())
        fields = {field: batch[field] for field in batch.interaction}
        parts = []
        for index in length_class_rows(batch[self.length_field]):  # (k_c,) each
            targets = int(weights.index_select(0, index).sum())
            if targets == 0:  # nothing to learn (a mean over no targets would be 0 / 0)
                continue
            rows = {field: values.index_select(0, index) for field, values in fields.items()}
            parts.append(BatchPart(Interaction(self._cut(rows)), targets / total))
        return parts

    def epoch_batches(self) -> list[torch.Tensor]:
        """The row indices of each batch of the next epoch.

        ``length_buckets`` = 0: consecutive slices of :meth:`epoch_order` (RecBole's batches).
        ``length_buckets`` = k > 0: the same order is cut into groups of k batches; each group is
        sorted by sequence length (ties keep the random order) and cut into k batches that hold
        about the same number of training targets (many short sequences or a few long ones), and
        the batches of the epoch are shuffled. Every row is still used once per epoch and every
        target weighs about as much as in random batches (the loss is a mean over a batch's
        targets), but a batch holds sequences of similar length, so little of it is padding (the
        model trims the columns that hold only padding, :meth:`TransformerRecommender.trimmed`).
        """
        order = self.epoch_order()  # (n,)
        if not (self.shuffle and self.length_buckets and self.length_field in self.rows()):
            return list(order.split(self.step))
        lengths = self.rows()[self.length_field].index_select(0, order)  # (n,)
        rows_per_group = self.length_buckets * self.step
        group = torch.arange(order.numel(), device=order.device) // rows_per_group  # (n,)
        key = group * (int(lengths.max()) + 1) + lengths  # (n,) group first, then length
        order = order[torch.sort(key, stable=True).indices]  # (n,)
        batches = []
        for rows in order.split(rows_per_group):  # (<= k * batch,) each, sorted by length
            batches += rows.split(self._balanced_sizes(self._targets_per_row()[rows]))
        shuffle = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[i] for i in shuffle]

    def _targets_per_row(self) -> torch.Tensor:
        """The number of training targets of every row (n,): its target list's non-padding
        entries, or its length for data without target lists."""
        if self._targets is None:
            rows = self.rows()
            if self.prefix_rows:
                self._targets = torch.ones_like(rows[self.length_field])  # (n,)
            else:
                self._targets = ((rows[TARGET_LIST_FIELD] > 0).sum(1) if TARGET_LIST_FIELD in rows
                                 else rows[self.length_field])  # (n,)
        return self._targets

    def _balanced_sizes(self, targets: torch.Tensor) -> list[int]:
        """Sizes of consecutive batches of a group whose rows have ``targets`` targets each (r,):
        as many batches as ``train_batch_size`` gives the group, cut where the running number of
        targets crosses equal shares (never an empty batch)."""
        n_batches = -(-targets.numel() // self.step)
        running = targets.cumsum(0)  # (r,)
        shares = running[-1] * torch.arange(1, n_batches, device=targets.device) / n_batches
        cuts = torch.searchsorted(running, shares, right=True).clamp(1, targets.numel() - 1)
        edges = [0, *sorted(set(cuts.tolist())), targets.numel()]
        return [b - a for a, b in zip(edges, edges[1:]) if b > a]

    def __iter__(self):
        for index in self.epoch_batches():  # (<= batch,) each
            yield self.batch_of(index)
        if self.shuffle:  # RandomSampler draws (and drops) one more permutation when exhausted
            torch.randperm(self.sample_size, generator=self.generator)
