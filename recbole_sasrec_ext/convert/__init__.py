"""Data converters: public sequential-recommendation files -> RecBole atomic files.

An offline tool apart from the training pipeline: importing it loads numpy and pandas, never torch
or RecBole. Command line: ``python -m recbole_sasrec_ext.convert`` (:mod:`.cli`); formats and the
output convention: :mod:`.converters`.
"""

from recbole_sasrec_ext.convert.converters import (
    ConversionError,
    ConversionSummary,
    Format,
    convert,
    kcore_filter,
    sort_and_renumber,
    write_dataset,
)

__all__ = [
    "ConversionError",
    "ConversionSummary",
    "Format",
    "convert",
    "kcore_filter",
    "sort_and_renumber",
    "write_dataset",
]
