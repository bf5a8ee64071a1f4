"""Config files: YAML, `_base_` inheritance, `--set` overrides, then the reference mapping.

Every command that reads a config file goes through `load_config`. The order:

1. each file is parsed and its keys renamed to our spelling (machine/config_compat.normalize);
2. its `_base_` files (a path or a list, relative to the file naming it) are loaded the same
   way, recursively, merged in order, and the file itself is merged over them (child wins);
3. `--set key.path=value` overrides, with their key paths renamed the same way, cast by
   `cast_value`;
4. the merged config is mapped onto our schema (the reference's `model` section, split mode,
   ignored keys as warnings, secrets redacted) and validated.

Paths inside a config (`env.skill_init`, `env.split_dir`, `env.data_path`) are relative to the
file that names them; a base file's paths are rewritten relative to the file that inherits it,
so at the end they are all relative to the file given on the command line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from skillopt.adapters.protocol import DataSource
from skillopt.commands.errors import InputError
from skillopt.machine.config.compat import canonical_assignment, deep_merge, normalize, to_skillopt
from skillopt.machine.config.schema import (
    ConfigError,
    EnvConfig,
    SkilloptConfig,
    apply_override,
    validate_config,
)

PATH_KEYS = ("skill_init", "split_dir", "data_path")  # under env


@dataclass(frozen=True)
class LoadedConfig:
    config: SkilloptConfig
    data: dict[str, Any]  # what run.created records: resolved, validated, secrets redacted
    warnings: list[str] = field(default_factory=list)  # keys mapped with a caveat, or ignored


def _shown(path: Path, top: Path) -> str:
    """A file in a message: relative to the top file's folder when that is shorter."""
    try:
        rel = os.path.relpath(path, top.parent)
    except ValueError:  # another drive
        return str(path)
    return rel if len(rel) < len(str(path)) else str(path)


MAX_CONFIG_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_ALIASES = 20  # a config needs few; an alias bomb needs many


class _StrictLoader(yaml.SafeLoader):
    """YAML as a config needs it: a duplicate key, an alias bomb (many or recursive aliases)
    or a nesting deeper than MAX_DEPTH is refused at once, naming where."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0
        self.open_anchors: list[str | None] = []  # of the nodes being composed, outermost first

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases (*name)", event)
            if event.anchor in self.open_anchors:
                raise _Refused(f"recursive alias *{event.anchor}", event)
        if len(self.open_anchors) + self.depth >= MAX_DEPTH:
            raise _Refused(f"nested deeper than {MAX_DEPTH} levels", event)
        anchor = getattr(event, "anchor", None) if not isinstance(event, yaml.AliasEvent) else None
        self.depth += 1
        self.open_anchors.append(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.open_anchors.pop()

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise _Refused(f"duplicate key {key!r}", key_node)
            seen[key] = True
        return super().construct_mapping(node, deep)


class _Refused(Exception):
    def __init__(self, problem: str, where: Any) -> None:
        mark = getattr(where, "start_mark", None)
        super().__init__(f"{problem}" + (f" at line {mark.line + 1}" if mark else ""))


def _parse(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise InputError(f"config file {path} is over {MAX_CONFIG_BYTES} bytes")
        text = path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"config file {path}: {exc.strerror}") from None
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data() or {}
    except _Refused as exc:
        raise InputError(f"{path}: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise InputError(f"{path}: the top level must be a mapping of sections (train, env, ...)")
    return data


def _base_list(value: Any, path: Path) -> list[str]:
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise InputError(f"{path}: _base_ must be a path or a list of paths")


def _rebase(data: dict[str, Any], source: Path, target: Path) -> dict[str, Any]:
    """Relative paths of a base file (folder `source`) as seen from folder `target`."""
    env = data.get("env")
    if source == target or not isinstance(env, dict):
        return data
    env = dict(env)
    for key in PATH_KEYS:
        value = env.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            env[key] = os.path.relpath(os.path.normpath(source / value), target)
    return {**data, "env": env}


def _load(path: Path, chain: list[Path], top: Path) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = [*chain[chain.index(resolved) :], resolved]
        raise InputError(
            f"{_shown(chain[-1], top)}: circular _base_: "
            + " -> ".join(_shown(p, top) for p in cycle)
        )
    data = _parse(path)
    bases = _base_list(data.pop("_base_", None), path)
    try:
        own = normalize(data)
    except ConfigError as exc:
        raise InputError(f"{path}: {exc}") from None
    merged: dict[str, Any] = {}
    for name in bases:
        base_path = resolved.parent / name
        if not base_path.is_file():
            raise InputError(f"{path}: _base_ {name!r}: file {base_path} not found")
        base = _load(base_path, [*chain, resolved], top)
        merged = deep_merge(merged, _rebase(base, base_path.resolve().parent, resolved.parent))
    return deep_merge(merged, own)


def read_config_tree(path: Path) -> dict[str, Any]:
    """The file and its `_base_` files merged, keys in our spelling, before any mapping."""
    if not path.is_file():
        raise InputError(f"config file {path} not found")
    return _load(path, [], path)


def load_config(
    path: Path,
    overrides: list[str],
    edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> LoadedConfig:
    """The config at `path`; `edit` (the bench's --model) changes the file's tree before the
    overrides, so that --set still has the last word."""
    data = read_config_tree(path)
    if edit is not None:
        data = edit(data)
    try:
        for assignment in overrides:
            data = apply_override(data, canonical_assignment(assignment))
        mapped, warnings = to_skillopt(data)
        mapped, priced = with_table_prices(mapped)
        warnings = [*warnings, *priced]
        checked = validate_config(mapped)
        if bad := non_finite(checked.model_dump()):  # free-form options escape pydantic's check
            raise ConfigError(f"{bad}: not a finite number")
        resolved = checked.model_dump(mode="json")
        # What run.created records is what every later stage folds: build from that.
        config = validate_config(resolved)
    except ConfigError as exc:
        raise InputError(f"{path}: {exc}") from None
    return LoadedConfig(config, resolved, warnings)


def with_table_cache(role: str, section: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The role's `cache` settings completed from the built-in model table (what the config
    leaves unset), and a note naming what was taken; None when the table does not know the
    model or nothing was missing."""
    from skillopt.machine.config.models_table import TABLE_DATE, table_cache
    from skillopt.machine.config.prices import table_prices

    model = str(section.get("model", ""))
    prices = section.get("prices")
    given_input = prices.get("input") if isinstance(prices, dict) else None
    listed = table_prices(model)
    input_price = given_input if given_input is not None else (listed[0] if listed else None)
    found = table_cache(model, input_price if isinstance(input_price, int | float) else None)
    given = section.get("cache")
    if found is None or (given is not None and not isinstance(given, dict)):
        return None  # not a mapping: validation names it
    missing = {k: v for k, v in found.items() if (given or {}).get(k) is None}
    if not missing:
        return None
    taken = ", ".join(f"{k} {v}" for k, v in missing.items())
    note = (
        f"models.{role}.cache: the built-in prompt-cache rules of {section.get('model')} "
        f"({TABLE_DATE}) are recorded: {taken}"
    )
    return {**section, "cache": {**(given or {}), **missing}}, note


def with_table_prices(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A role whose model is in the built-in price table and which names no prices gets the
    table's, written into the config (so the run records what it assumed) with a warning."""
    from skillopt.machine.config.prices import TABLE_DATE, table_prices

    models = data.get("models")
    if not isinstance(models, dict):
        return data, []
    notes, out = [], dict(models)
    for role, section in models.items():
        if isinstance(section, dict) and (cached := with_table_cache(role, section)) is not None:
            section, note = cached
            out[role] = section
            notes += [note] if note else []
        if not isinstance(section, dict) or section.get("prices") is not None:
            continue
        found = table_prices(str(section.get("model", "")))
        if found is None:
            continue
        price = dict(zip(("input", "output", "cached_input"), found, strict=True))
        out[role] = {**section, "prices": price}
        notes.append(
            f"models.{role}.prices: none given; the built-in list prices of "
            f"{section.get('model')} ({TABLE_DATE}) are recorded: ${found[0]} input, "
            f"${found[1]} output, ${found[2]} cached input per million tokens"
        )
    return {**data, "models": out}, notes


def non_finite(value: Any, where: str = "") -> str | None:
    """The key path of the first NaN or infinity (or a None left by one) in option values."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if found := non_finite(inner, f"{where}.{key}" if where else str(key)):
                return found
    elif isinstance(value, float) and not math.isfinite(value):
        return where
    return None


def data_source(env: EnvConfig, parity: bool = True) -> DataSource | None:
    """The files a config's environment reads its items from (env.split_dir or env.data_path,
    already absolute), or None: the environment's own data (a shipped task set). `parity`:
    the config's version splits as the reference (SkilloptConfig.parity)."""
    if env.split_dir is None and env.data_path is None:
        return None
    return DataSource(
        env.split_dir, env.data_path, env.ratio(), env.split_seed, env.sizes(), parity
    )
