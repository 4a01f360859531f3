"""Reading a config file: YAML or JSON (by its name), strictly, with messages that name the file.

Both refuse duplicate keys; YAML takes only true/false as booleans. A message never quotes the
offending line: it may hold a secret.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import yaml

try:  # libyaml's parser (PyYAML's wheels have it): the same rules, about 8 times faster
    from yaml import CSafeLoader as SafeLoader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader  # type: ignore[assignment]


class ConfigError(ValueError):
    """A configuration mistake, worded for the user on one line."""


def read_document(source: str) -> object:
    """The decoded document in file `source` (JSON if its name ends in .json, else YAML)."""
    try:
        # utf-8-sig: tolerate the BOM some Windows editors write.
        with open(source, encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{source}: cannot read the config file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: the config file is not UTF-8 text") from None
    return decode_document(text, source)


def decode_document(text: str, source: str) -> object:
    """`text` decoded as JSON if `source` (a file or object name) ends in .json, else YAML."""
    if source.lower().endswith(".json"):
        return _decode_json(text, source)
    return _decode_yaml(text, source)


def beside(config: str, path: str) -> str:
    """A file named in the config file `config`: a relative path is taken from that file's
    folder (not the working directory); absolute paths and URLs (s3://...) are kept."""
    if not path or "://" in path or os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(config), path)


class _Loader(SafeLoader):
    """YAML with only true/false as booleans and no duplicate keys.

    PyYAML follows YAML 1.1, where yes/no/on/off are booleans too ("region: no" would become
    False); here they stay strings, so a boolean field holding one is reported, not guessed.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _decode_yaml(text: str, source: str) -> object:
    try:
        return yaml.load(text, Loader=_Loader)  # safe: _Loader is a SafeLoader
    except yaml.MarkedYAMLError as e:
        # Built from problem and position only: str(e) quotes the offending line (maybe a secret).
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = ": ".join(str(p) for p in (e.context, e.problem) if p) or "syntax error"
        problem = " ".join(problem.split())
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{source}: invalid YAML") from None


def _decode_json(text: str, source: str) -> object:
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        counts = Counter(key for key, _ in pairs)
        duplicates = [key for key, n in counts.items() if n > 1]
        if duplicates:
            raise ConfigError(f"{source}: invalid JSON: duplicate key {duplicates[0]!r}")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{source}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
