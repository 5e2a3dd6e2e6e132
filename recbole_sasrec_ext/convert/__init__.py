"""Data converters: public sequential-recommendation files -> RecBole atomic files.

An offline tool apart from the training pipeline: importing it loads numpy and pandas, never torch
or RecBole. Command line: ``python -m recbole_sasrec_ext.convert`` (:mod:`.cli`); formats and the
output convention: :mod:`.converters`.

Modules, in the order a conversion uses them:

* :mod:`.converters`: :class:`Format` and :func:`convert`, the entry point that runs the steps;
* :mod:`.text`: reading (optionally gzipped) UTF-8 source files;
* :mod:`.grammar`: the line grammars and the messages that name a bad line's problem;
* :mod:`.readers`: one reader per format, source file -> interaction frame;
* :mod:`.transforms`: k-core filter, sort and renumbering, integral floats as int64;
* :mod:`.writer`: the atomic ``.inter`` and ``.yaml`` files and :class:`ConversionSummary`;
* :mod:`.columns`, :mod:`.errors`: column names and types, :class:`ConversionError`;
* :mod:`.synthetic`: synthetic ML-20M-like logs for scale tests.
"""

from recbole_sasrec_ext.convert.converters import Format, convert
from recbole_sasrec_ext.convert.errors import ConversionError
from recbole_sasrec_ext.convert.transforms import kcore_filter, sort_and_renumber
from recbole_sasrec_ext.convert.writer import ConversionSummary, write_dataset

__all__ = [
    "ConversionError",
    "ConversionSummary",
    "Format",
    "convert",
    "kcore_filter",
    "sort_and_renumber",
    "write_dataset",
]
