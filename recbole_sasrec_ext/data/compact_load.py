"""RecBole's atomic-file reader with the memory of the data, not of Python strings.

RecBole 1.2.1 (``Dataset._load_feat``) reads every column with pandas' Python parser and keeps
``token`` columns as Python strings: on 20M interactions that is about 40M string objects
(several GB) before the ids are remapped. :class:`CompactLoadMixin` reads files whose fields are
all ``token`` or ``float`` with pandas' C parser, ``token`` columns as categoricals (one string per
distinct token, 4-byte codes) and ``float`` columns with Python's own float parsing
(``float_precision="round_trip"``, the values the Python parser gives). RecBole's remapping sees
the same tokens in the same order, so the ids, and everything after, are RecBole's.

Files with sequence fields (``token_seq``, ``float_seq``) or a separator of more than one
character are read by RecBole's own reader.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from recbole.utils import FeatureSource, FeatureType

from recbole_sasrec_ext.data.atomic import READ_CSV_STRICT, check_rows_read


class CompactLoadMixin:
    """Mix into a RecBole ``Dataset`` subclass (before it in the bases)."""

    def _load_feat(self, filepath, source):
        load_col, unload_col = self._get_load_and_unload_col(source)
        if load_col == set():
            return None
        separator = self.config["field_separator"]
        encoding = self.config["encoding"]
        with open(filepath, encoding=encoding) as f:
            head = f.readline()[:-1]
        header = [field_type.split(":") for field_type in head.split(separator)]
        simple = all(len(h) == 2 and h[1] in ("token", "float") for h in header)
        if len(separator) != 1 or not simple:
            return super()._load_feat(filepath, source)

        columns, usecols, dtype = [], [], {}
        for (field, ftype_name), field_type in zip(header, head.split(separator)):
            ftype = FeatureType(ftype_name)
            if (load_col is not None and field not in load_col) or (
                unload_col is not None and field in unload_col
            ):
                continue
            if isinstance(source, FeatureSource) or source != "link":  # as RecBole
                self.field2source[field] = source
                self.field2type[field] = ftype
                self.field2seqlen[field] = 1
                if ftype == FeatureType.FLOAT:
                    self.field2bucketnum[field] = 2
            columns.append(field)
            usecols.append(field_type)
            dtype[field_type] = np.float64 if ftype == FeatureType.FLOAT else "category"
        if not columns:
            self.logger.warning(f"No columns has been loaded from [{source}]")
            return None
        df = pd.read_csv(
            filepath,
            delimiter=separator,
            usecols=usecols,
            dtype=dtype,
            encoding=encoding,
            engine="c",
            float_precision="round_trip",
            **READ_CSV_STRICT,
        )
        check_rows_read(filepath, len(df))
        df.columns = columns
        return df
