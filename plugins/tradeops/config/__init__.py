"""Load and validate ``tradeops.yaml``, the single description of the platform.

``load_config()`` is cheap enough for DAG parse time (a small YAML file, cached per process and file version).
A bad file raises :class:`~tradeops.exceptions.ConfigError` with one message that names the file, each faulty
field's path and line, and the reason.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from tradeops.config.consistency import consistency_errors
from tradeops.config.durations import format_duration, parse_duration
from tradeops.config.model import TradeOpsConfig
from tradeops.exceptions import ConfigError

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = ["CONFIG_ENV", "TradeOpsConfig", "default_config_path", "format_duration", "load_config", "parse_duration"]

CONFIG_ENV = "TRADEOPS_CONFIG"
_REPO_CONFIG = Path(__file__).resolve().parents[3] / "include" / "config" / "tradeops.yaml"


def default_config_path() -> Path:
    """``$TRADEOPS_CONFIG`` if set, else the repository's ``include/config/tradeops.yaml``."""
    return Path(os.environ.get(CONFIG_ENV) or _REPO_CONFIG)


def load_config(path: str | Path | None = None) -> TradeOpsConfig:
    """The validated config; a file with ``extends: other.yaml`` is that file with its own keys merged over."""
    path = Path(path) if path else default_config_path()
    return _load(str(path.resolve()), _versions(path))


def _versions(path: Path, seen: tuple = ()) -> tuple:
    """The modification times of a config and of every file it extends (the cache key)."""
    try:
        stamp = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError as err:
        raise ConfigError(f"TradeOps config {path}: cannot read it ({err.strerror})") from None
    if stamp[0] in seen:
        raise ConfigError(f"TradeOps config {path}: 'extends' loops back to itself")
    match = _EXTENDS.search(path.read_text(encoding="utf-8"))
    if match is None:
        return (stamp,)
    base = match.group("double") or match.group("single") or match.group("plain")
    return (stamp, *_versions(path.parent / base, (*seen, stamp[0])))


# Found without parsing the YAML, as the cache key is computed on every load_config(); _read checks it agrees.
# The path as YAML writes it: in double or single quotes, or plain (spaces inside allowed, a " #" ends it).
_EXTENDS = re.compile(
    r"""^extends:[ \t]*(?:"(?P<double>[^"\n]+)"|'(?P<single>[^'\n]+)'|(?P<plain>[^'"\s#](?:[^#\n]*[^\s#])?))"""
    r"""[ \t]*(?:#.*)?$""",
    re.MULTILINE,
)


def _merge(base: dict, overlay: dict) -> dict:
    """Mappings merge key by key; anything else (lists included) in the overlay replaces the base's."""
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def _read(path: str) -> tuple[dict, yaml.Node | None]:
    text = Path(path).read_text(encoding="utf-8")
    try:
        tree = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"TradeOps config {path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"TradeOps config {path}: the top level must be a mapping")
    return data, tree


@functools.lru_cache(maxsize=8)
def _load(path: str, versions: tuple) -> TradeOpsConfig:
    """The file merged over the files it extends (``versions``: the file first, then its base, ...), validated."""
    chain = [file for file, _ in versions]
    layers = [_read(file) for file in chain]
    for file, (layer, _) in zip(chain, layers):
        if ("extends" in layer) != (file != chain[-1]):
            raise ConfigError(f"TradeOps config {file}: write 'extends: <file>' on a line of its own")
        layer.pop("extends", None)
    data = layers[-1][0]
    for overlay, _ in reversed(layers[:-1]):
        data = _merge(data, overlay)
    trees = [(file, tree) for file, (_, tree) in zip(chain, layers)]

    try:
        config = TradeOpsConfig.model_validate(data)
    except ValidationError as err:
        problems = [(_location(data, e), _reason(e)) for e in err.errors(include_url=False)]
        raise ConfigError(_message(path, trees, problems)) from None
    problems = consistency_errors(config)
    if problems:
        raise ConfigError(_message(path, trees, problems))
    return config


def _location(data: dict, error: ErrorDetails) -> tuple:
    """The error's path as the files spell it: without pydantic's union tags and ``[key]`` markers."""
    loc = list(error["loc"])
    if error["type"] == "union_tag_invalid":
        loc.append(error["ctx"]["discriminator"].strip("'"))
    cleaned: list[Any] = []
    node: Any = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if part == "[key]":
            continue
        if isinstance(node, dict):
            child = next((value for key, value in node.items() if str(key) == str(part)), _ABSENT)
            if child is _ABSENT and not last:
                continue  # a union tag or a key marker, not a key of the file
            cleaned.append(part)
            node = child
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            cleaned.append(part)
            node = node[part]
        else:
            cleaned.append(part)
    return tuple(cleaned)


_ABSENT = object()


def _reason(error: ErrorDetails) -> str:
    reason = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    if error["type"] not in ("missing",) and "input" in error and not isinstance(error["input"], dict | list):
        reason += f" (got {error['input']!r})"
    return reason


def _message(path: str, trees: list[tuple[str, yaml.Node | None]], problems: list[tuple[tuple, str]]) -> str:
    count = len(problems)
    lines = [f"TradeOps config {path} is invalid ({count} problem{'s' if count > 1 else ''}):"]
    for loc, reason in problems:
        # The file that spells out most of the path (the file itself, or one it extends) and the line there.
        depth, line, file = max(((*_line_of(tree, loc), file) for file, tree in trees), key=lambda found: found[0])
        where = f"line {line}: " if line else ""
        if file != path:
            where = f"{Path(file).name} {where}"
        lines.append(f"  {where}{_dotted(loc)}: {reason}")
    return "\n".join(lines)


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(node: yaml.Node | None, loc: tuple) -> tuple[int, int | None]:
    """How many parts of the error path the YAML tree has, and the 1-based line of the deepest one."""
    depth, line = 0, node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((value for key, value in node.value if key.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        depth, line = depth + 1, node.start_mark.line + 1
    return depth, line


_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when libyaml is there


class _Loader(_SafeLoader):
    """A safe loader that refuses duplicate keys instead of keeping the last one silently."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
