"""A strict YAML reader for configs and command-line values.

PyYAML's ``safe_load`` follows YAML 1.1, which reads ``1:2`` as 62 (base 60),
``yes``/``on`` as true, ``010`` as 8 (octal) and ``1e-3`` as a string, keeps the
last of two equal keys without a word, and expands aliases, so that a few
hundred bytes of ``&a [*b, *b, …]`` unfold into gigabytes once the config is
validated or written out. :func:`load` reads YAML as a config needs it:

- scalars resolve as in the YAML 1.2 core schema: ``true``/``false`` (any case
  style), ``null``/``~``/empty, decimal, ``0o`` octal and ``0x`` hex integers
  (``010`` is ten), floats with or without a dot (``1e-3``), ``.inf``, ``.nan``;
  everything else — ``yes``, ``1:2``, ``2020-01-01`` — is a string;
- a repeated key in one mapping is an error naming the key and its line;
- anchors and aliases (``&a``, ``*a``, ``<<: *a``) are errors, so the size of
  what is read is bounded by the size of the text.

Errors are raised as :class:`YAMLInputError` (a ``yaml.YAMLError``) with a
one-line ``problem`` and the ``problem_mark`` of the offending node.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode


class YAMLInputError(yaml.MarkedYAMLError):
    """A YAML construct a config may not use (alias, duplicate key, too deep)."""

    def __init__(self, problem: str, mark=None):
        super().__init__(problem=problem, problem_mark=mark)


# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")

# deeper nesting than this is no config (and would exhaust Python's recursion)
MAX_DEPTH = 64


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars, no aliases, no duplicate keys, bounded depth."""

    yaml_implicit_resolvers: dict = {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YAMLInputError(f"alias *{event.anchor} is not allowed (no anchors or aliases in a config)",
                                 event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise YAMLInputError(f"anchor &{event.anchor} is not allowed (no anchors or aliases in a config)",
                                 event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLInputError(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise YAMLInputError(f"a mapping key must be a scalar, got {key!r}", key_node.start_mark) from None
                if key in seen:
                    raise YAMLInputError(f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                                         key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    def construct_yaml_float(self, node):
        text = self.construct_scalar(node).lower()
        if text.endswith(".nan"):
            return float("nan")
        if text.endswith(".inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        return float(text)

    def construct_yaml_bool(self, node):
        return self.construct_scalar(node).lower() == "true"


for _tag, _regexp, _first in [
    ("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
    ("tag:yaml.org,2002:float", _FLOAT, "-+0123456789."),
]:
    StrictLoader.add_implicit_resolver(_tag, _regexp, list(_first))
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)
StrictLoader.add_constructor("tag:yaml.org,2002:bool", StrictLoader.construct_yaml_bool)
# YAML 1.1 extras a config must not silently get: timestamps, sets, ordered maps, binary
for _tag in ["timestamp", "set", "omap", "pairs", "binary"]:
    StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", SafeConstructor.construct_undefined)


def load(text: str) -> Any:
    """Parse ``text`` with :class:`StrictLoader`; raises ``yaml.YAMLError`` on anything else."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
