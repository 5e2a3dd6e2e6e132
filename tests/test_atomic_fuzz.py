"""Fuzz the atomic-file reader: any bytes give either a clean pass or a one-line PluginError that
names the file, never another exception or a hang."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recbole_sasrec_ext.common.errors import PluginError
from recbole_sasrec_ext.data.atomic import check_atomic_file

FIELDS = [
    "user_id:token",
    "item_id:token",
    "timestamp:float",
    "rating:float",
    "tags:token_seq",
    "x:tokn",
    "y",
    "",
]
CELLS = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.floats(allow_nan=True).map(repr),
    st.text(max_size=6),
    st.sampled_from(["", " ", "nan", "inf", "1e5", "\x00", "\ufeff", "a b", '"q"', "\r", "\t\t"]),
)
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r", "\n\n", ""])


@st.composite
def atomic_bytes(draw) -> bytes:
    header = draw(st.lists(st.sampled_from(FIELDS), min_size=0, max_size=4))
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=5), max_size=8))
    end = draw(LINE_ENDS)
    text = draw(st.sampled_from(["", "\ufeff"])) + "\t".join(header) + end
    text += "".join("\t".join(row) + draw(LINE_ENDS) for row in rows)
    data = text.encode("utf-8", errors="surrogatepass")
    junk = draw(st.binary(max_size=4))
    at = draw(st.integers(0, len(data)))
    return data[:at] + junk + data[at:] if draw(st.booleans()) else data


def _check(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.inter"
        path.write_bytes(data)
        start = time.monotonic()
        try:
            check_atomic_file(path, "\t", "utf-8")
        except PluginError as exc:
            message = str(exc)
            assert str(path) in message or message.startswith("config key"), message
            assert "Traceback" not in message
        assert time.monotonic() - start < 5.0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(atomic_bytes())
def test_structured_files_give_clean_errors(data):
    _check(data)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_give_clean_errors(data):
    _check(data)
