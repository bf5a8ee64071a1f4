"""Immutable values that are cheap to update: what keeps the reducer fast on long runs.

`replace` is `dataclasses.replace` for the state's plain frozen dataclasses, without the
keyword round trip through `__init__` (which made it the reducer's main cost: a 40-field
state was rebuilt several times per event). `PMap` is a persistent mapping: `set` returns a
new map and shares all but one bucket with the old one, so recording a rollout no longer
copies every rollout key of the run (that made folding quadratic in the run's length).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

_PLAIN: dict[type, bool] = {}


def _plain(cls: type) -> bool:
    """A dataclass whose instances are fully described by their __dict__ of init fields."""
    if cls not in _PLAIN:
        fields = dataclasses.fields(cls)
        _PLAIN[cls] = (
            not hasattr(cls, "__post_init__")
            and not hasattr(cls, "__slots__")
            and all(f.init for f in fields)
        )
    return _PLAIN[cls]


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the frozen dataclass `obj` with `changes`: same result as dataclasses.replace."""
    cls = type(obj)
    if not _plain(cls):
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    values = obj.__dict__
    if not changes.keys() <= values.keys():
        unknown = sorted(changes.keys() - values.keys())
        raise TypeError(
            f"{cls.__name__}.__init__() got an unexpected keyword argument {unknown[0]!r}"
        )
    new = object.__new__(cls)
    object.__setattr__(new, "__dict__", {**values, **changes})  # frozen: no __setattr__
    return new


_MAKERS: dict[type, Callable[..., Any]] = {}


def make(cls: type[T], *args: Any) -> T:
    """`cls(*args)` for a plain frozen dataclass, without `__init__`'s per-field
    `object.__setattr__` (the reducer builds one ItemScore per rollout)."""
    return maker(cls)(*args)  # type: ignore[no-any-return]


def maker(cls: type[T]) -> Callable[..., T]:
    """The fast constructor of `cls` that `make` uses (to call it without the lookup)."""
    found = _MAKERS.get(cls)
    if found is None:
        found = _MAKERS[cls] = _maker(cls)
    return found


def _maker(cls: type) -> Callable[..., Any]:
    """A constructor that builds the instance's __dict__ in one go (dataclasses itself
    generates __init__ the same way, from source)."""
    fields = dataclasses.fields(cls)
    if not _plain(cls) or any(f.default_factory is not dataclasses.MISSING for f in fields):
        return cls
    params, defaults = [], {}
    for f in fields:
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            defaults[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
    body = ", ".join(f"{f.name!r}: {f.name}" for f in fields)
    source = (
        f"def make({', '.join(params)}):\n"
        f"    new = _new(_cls)\n"
        f"    _set(new, '__dict__', {{{body}}})\n"
        f"    return new\n"
    )
    scope: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__, "_cls": cls}
    scope.update(defaults)
    exec(source, scope)  # noqa: S102 - field names only, from the class definition
    return scope["make"]  # type: ignore[no-any-return]


_WIDTH = 64


class PMap(Mapping[K, V], Generic[K, V]):
    """A persistent mapping: `set` and `delete` return new maps; the old ones never change.

    Keys are spread over a fixed number of buckets by hash; an update copies one bucket and
    the bucket table, not the whole map. Iteration is in sorted key order when keys sort (so
    it never depends on hash seeds), else in bucket order. Equal to any mapping with the same
    items."""

    __slots__ = ("_buckets", "_len")

    def __init__(self, items: Mapping[K, V] | None = None) -> None:
        buckets: list[dict[K, V]] = [{} for _ in range(_WIDTH)]
        for k, v in (items or {}).items():
            buckets[hash(k) % _WIDTH][k] = v
        self._buckets = buckets  # never changed once built: updates copy the list
        self._len = sum(len(b) for b in buckets)

    def set(self, key: K, value: V) -> PMap[K, V]:
        i = hash(key) % _WIDTH
        bucket = self._buckets[i]
        new = object.__new__(type(self))
        new._len = self._len if key in bucket else self._len + 1
        new._buckets = buckets = self._buckets.copy()
        buckets[i] = {**bucket, key: value}
        return new

    def __getitem__(self, key: K) -> V:
        return self._buckets[hash(key) % _WIDTH][key]

    def get(self, key: K, default: Any = None) -> Any:
        return self._buckets[hash(key) % _WIDTH].get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets[hash(key) % _WIDTH]

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        keys = [k for b in self._buckets for k in b]
        with contextlib.suppress(TypeError):  # keys that do not sort: bucket order
            keys.sort()  # type: ignore[call-arg]
        return iter(keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return len(self) == len(other) and all(
            k in other and other[k] == v for b in self._buckets for k, v in b.items()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PMap({dict(self.items())!r})"
