"""Secrets that must never be recorded: a run's config goes into its first event, so a URL in
it that carries a credential (a password in its userinfo, a key in its query) is refused where
the config is read, naming the key and never the value. Keys belong in the environment
variable a role names (`api_key_env`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_USERINFO_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@?#]*:[^/@?#]*@")
_QUERY_SECRET = re.compile(
    r"[?&](?:api[-_]?key|key|token|access[-_]?token|secret|password|passwd|sig|signature)=",
    re.IGNORECASE,
)


def carries_credential(url: str) -> bool:
    """Whether `url` holds a password (scheme://user:PASSWORD@host) or a key in its query."""
    return bool(_USERINFO_PASSWORD.match(url) or _QUERY_SECRET.search(url))


def _urls(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _urls(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _urls(inner, f"{path}[{i}]")
    elif isinstance(value, str) and "://" in value:
        yield path, value


def credential_keys(config: dict[str, Any]) -> list[str]:
    """The dotted keys of the config whose value is a URL carrying a credential."""
    return [path for path, url in _urls(config, "") if carries_credential(url)]
