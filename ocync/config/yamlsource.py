"""A config file composed into plain data that remembers the line of every key and item.

The only module importing yaml. Duplicate keys, unknown tags and nesting too deep become
located problems; alias bombs and unreadable YAML raise ConfigError at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ocync.config.problems import Loc, Problem
from ocync.errors import ConfigError


@dataclass(slots=True)
class Document:
    """The composed data, the line of each location, and the problems met on the way."""

    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    filename: str = "<config>"
    nodes: int = 0

    def line_of(self, loc: Loc) -> int:
        """The line of ``loc``, else of its nearest located parent, else 1."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return 1


_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
_MAX_DEPTH = 64
# Values built at most: aliases make a few lines expand exponentially ("billion laughs");
# a real config has hundreds of values, a big fleet tens of thousands.
_MAX_NODES = 200_000


def _build(loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, doc: Document, depth: int) -> Any:
    doc.nodes += 1
    if doc.nodes > _MAX_NODES:
        raise ConfigError(
            f"{doc.filename}:{node.start_mark.line + 1}: more than {_MAX_NODES} values once "
            "aliases are expanded (an alias bomb?)"
        )
    if depth > _MAX_DEPTH:
        doc.problems.append(Problem(loc, "nested too deeply (recursive alias?)"))
        return None
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
        # Scalars with unknown tags fail in construct_object; collections must too.
        raise yaml.constructor.ConstructorError(
            None, None, f"unsupported tag {node.tag!r}", node.start_mark
        )
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(loader, node, loc, doc, depth)
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            doc.lines[loc + (i,)] = item.start_mark.line + 1
            items.append(_build(loader, item, loc + (i,), doc, depth + 1))
        return items
    return loader.construct_object(node)


def _build_mapping(
    loader: yaml.SafeLoader, node: yaml.MappingNode, loc: Loc, doc: Document, depth: int
) -> dict[Any, Any]:
    # Duplicate keys, on the keys as written (merge keys `<<` are left to flatten_mapping).
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            doc.lines.setdefault(loc + (key,), line)
            doc.problems.append(
                Problem(loc + (key,), f"duplicate key `{key}` (first at line {seen[key]})")
            )
        else:
            seen[key] = line
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            doc.problems.append(Problem(loc, "keys must be plain names"))
            continue
        key = loader.construct_object(key_node)
        doc.lines[loc + (key,)] = key_node.start_mark.line + 1
        result[key] = _build(loader, value_node, loc + (key,), doc, depth + 1)
    return result


def _reader_error(filename: str, text: str, exc: yaml.reader.ReaderError) -> ConfigError:
    line = text[: max(exc.position, 0)].count("\n") + 1
    return ConfigError(
        f"{filename}:{line}: invalid YAML: character #x{exc.character:04x} is not allowed"
    )


# libyaml composes a 10,000-mapping config ~10x faster and in a third of the memory of the
# pure-Python loader (stress/scale.py); the nodes, marks and constructors are the same.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def compose(text: str, filename: str) -> Document:
    """The file as a Document (a mapping is checked by the caller); ConfigError if not YAML.

    libyaml first when it is there; anything it refuses is composed again by the pure-Python
    loader, whose errors (with their lines) are the ones reported."""
    if _FAST_LOADER is not None:
        try:
            return _compose(text, filename, _FAST_LOADER)
        except (yaml.YAMLError, RecursionError, ConfigError, ValueError):
            pass  # e.g. a lone surrogate libyaml cannot encode: reported by the pure loader
    return _compose(text, filename, yaml.SafeLoader)


def _compose(text: str, filename: str, loader_class: type[yaml.SafeLoader]) -> Document:
    try:
        loader = loader_class(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(filename, text, exc) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"{filename}:1: the file is empty (expected registries and mappings)")
        doc = Document(data=None, filename=filename)
        doc.lines[()] = node.start_mark.line + 1
        doc.data = _build(loader, node, (), doc, 0)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{filename}:{line}: invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(filename, text, exc) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{filename}:1: invalid YAML: {first}") from None
    except RecursionError:
        # PyYAML composes nested flow collections recursively ("[[[[...").
        raise ConfigError(f"{filename}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


__all__ = ["Document", "compose", "dump_yaml"]
