"""Yaml loading shared by every input file (config files, suites, search spaces): a key given
twice in one mapping is an error (yaml itself keeps the last value silently)."""

from __future__ import annotations

from typing import Any

import yaml


class UniqueKeysMixin:
    """Mix into a yaml loader (before it in the bases): a duplicate key raises a
    ``ConstructorError`` marked at the second occurrence (its line)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base loader reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def unique_keys(loader: type) -> type:
    """``loader`` (a yaml Loader class) with :class:`UniqueKeysMixin`."""
    if issubclass(loader, UniqueKeysMixin):
        return loader
    return type(f"UniqueKeys{loader.__name__}", (UniqueKeysMixin, loader), {})


class SafeLoader(UniqueKeysMixin, yaml.SafeLoader):
    """``yaml.SafeLoader`` rejecting duplicate keys."""


def safe_load(stream) -> Any:
    """``yaml.safe_load`` that rejects duplicate keys."""
    return yaml.load(stream, Loader=SafeLoader)
