"""Item titles for recommendations and pictures: from a RecBole ``.item`` file with a title field.

ml-100k's bundled ``ml-100k.item`` has ``movie_title``. For the SASRec paper's ML-1M (renumbered
items), write ``datasets/ml-1m/ml-1m.item`` once from the GroupLens ``movies.dat`` and the id map::

    python -m recbole_sasrec_ext.common.titles \\
        --movies ../shared/data/ml-1m/grouplens-metadata/movies.dat \\
        --mapping ../shared/data/ml-1m/sas_to_original_items.txt --out datasets/ml-1m/ml-1m.item

(``properties/dataset/ml-1m.yaml`` loads only the ``.inter`` columns, so training ignores the file.)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: Fields of a ``.item`` file taken as the title, first match wins.
TITLE_FIELDS = ("movie_title", "title", "name", "item_name")


def item_file(data_path: os.PathLike, dataset: str) -> Path:
    """``<data_path>/<dataset>.item`` (``data_path`` is the data set's own folder, as RecBole's
    final ``config['data_path']``)."""
    return Path(data_path) / f"{dataset}.item"


def read_titles(path: os.PathLike) -> dict[str, str]:
    """Item token -> title from a RecBole ``.item`` file; {} without a file or a title field."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", errors="replace") as f:
        header = [c.split(":")[0] for c in f.readline().rstrip("\r\n").split("\t")]
        field = next((n for n in TITLE_FIELDS if n in header), None)
        if field is None or header[0] != "item_id" and "item_id" not in header:
            return {}
        key, col = header.index("item_id"), header.index(field)
        titles = {}
        for line in f:
            parts = line.rstrip("\r\n").split("\t")
            if len(parts) > max(key, col):
                titles[parts[key]] = parts[col]
        return titles


def write_movielens_item_file(movies: os.PathLike, mapping: os.PathLike, out: os.PathLike) -> int:
    """Write ``out`` (item_id:token, movie_title:token_seq) for renumbered MovieLens items:
    ``mapping`` lines are ``<new id> <original MovieLens id>``, ``movies`` is GroupLens'
    ``movies.dat`` (``id::title::genres``, Latin-1). Returns the number of items written."""
    original = {}
    with open(movies, encoding="latin-1") as f:
        for line in f:
            movie_id, title, _ = line.rstrip("\r\n").split("::")
            original[movie_id] = title
    rows = []
    with open(mapping, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{mapping}:{number}: expected '<new id> <original id>'")
            if parts[1] in original:
                rows.append(f"{parts[0]}\t{original[parts[1]]}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("item_id:token\tmovie_title:token_seq\n" + "\n".join(rows) + "\n",
                   encoding="utf-8")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbole_sasrec_ext.common.titles",
                                     description="Write a .item file with MovieLens titles.")
    parser.add_argument("--movies", required=True, help="GroupLens movies.dat")
    parser.add_argument("--mapping", required=True, help="lines '<new id> <original id>'")
    parser.add_argument("--out", required=True, help="the .item file to write")
    args = parser.parse_args(argv)
    for name in (args.movies, args.mapping):
        if not os.path.isfile(name):
            print(f"error: file not found: {name}", file=sys.stderr)
            return 2
    try:
        n = write_movielens_item_file(args.movies, args.mapping, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{n} titles -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
