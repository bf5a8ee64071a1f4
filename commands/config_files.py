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

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from skillopt.commands.errors import InputError
from skillopt.machine.config.compat import canonical_assignment, deep_merge, normalize, to_skillopt
from skillopt.machine.config.schema import (
    ConfigError,
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


def _parse(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
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


def load_config(path: Path, overrides: list[str]) -> LoadedConfig:
    from skillopt.commands.cli import non_finite

    data = read_config_tree(path)
    try:
        for assignment in overrides:
            data = apply_override(data, canonical_assignment(assignment))
        mapped, warnings = to_skillopt(data)
        checked = validate_config(mapped)
        if bad := non_finite(checked.model_dump()):  # free-form options escape pydantic's check
            raise ConfigError(f"{bad}: not a finite number")
        resolved = checked.model_dump(mode="json")
        # What run.created records is what every later stage folds: build from that.
        config = validate_config(resolved)
    except ConfigError as exc:
        raise InputError(f"{path}: {exc}") from None
    return LoadedConfig(config, resolved, warnings)
