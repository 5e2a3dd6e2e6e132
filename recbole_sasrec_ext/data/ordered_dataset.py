"""RecBole's ``SequentialDataset`` that also works for atomic files without a time field, and that
remembers every (user, item) pair for the fixed evaluation negatives."""

from __future__ import annotations

import numpy as np
import pandas as pd
from recbole.data.dataset import SequentialDataset
from recbole.utils import FeatureSource, FeatureType

from recbole_sasrec_ext.data.compact_load import CompactLoadMixin


class OrderedSequentialDataset(CompactLoadMixin, SequentialDataset):
    """:class:`recbole.data.dataset.SequentialDataset` with two additions, reading its atomic files
    with :class:`~recbole_sasrec_ext.data.compact_load.CompactLoadMixin` (same ids, less memory).

    * If the ``.inter`` file has no time field (SASRec-style files are ordered but untimed), the
      file order becomes the time field (row number), so sequences keep the file's order instead
      of failing with "time_field isn't set".
    * ``user_item_pairs`` holds every (user, item) interaction of the whole data set (all splits),
      sorted by user, then time; the fixed evaluation sampler excludes them from the negatives and
      ``filter_seen`` removes a user's earlier ones from full ranking.
    """

    def _load_inter_feat(self, token, dataset_path):
        super()._load_inter_feat(token, dataset_path)
        feat = self.inter_feat
        if self.time_field and feat is not None and self.time_field not in feat.columns:
            self.logger.info(
                f"[{self.time_field}] is not in {token}.inter: the file order is used as time"
            )
            feat[self.time_field] = pd.Series(np.arange(len(feat), dtype=np.float64),
                                              index=feat.index)
            self.set_field_property(self.time_field, FeatureType.FLOAT,
                                    FeatureSource.INTERACTION, 1)
            self.field2bucketnum[self.time_field] = 2

    def data_augmentation(self):
        self.sort(by=[self.uid_field, self.time_field], ascending=True)  # RecBole sorts so too
        self.user_item_pairs = (
            self.inter_feat[self.uid_field].numpy().copy(),
            self.inter_feat[self.iid_field].numpy().copy(),
        )
        super().data_augmentation()
