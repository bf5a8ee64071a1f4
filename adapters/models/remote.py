"""What the provider backends share: reading the API key, classifying errors, retrying.

429, 408, 409, 5xx, timeouts, connection errors and unreadable bodies are retried with
exponential backoff and jitter, honouring Retry-After, bounded by attempts and a deadline.
400/401/403/404/422 fail at once, naming role, backend, model and the key variable.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from skillopt.adapters.protocol import AdapterError, ModelCallError, RoleSettings

T = TypeVar("T")
RETRYABLE_STATUS = {408, 409, 429}
_SEMAPHORES: dict[tuple[str, str | None, str], threading.BoundedSemaphore] = {}
_LOCK = threading.Lock()


def api_key(settings: RoleSettings, required: bool) -> str | None:
    name = settings.api_key_env
    if name is None:
        if required:
            raise AdapterError(
                f"models.{settings.role}.api_key_env: name the environment variable that holds "
                f"the {settings.backend} API key"
            )
        return None
    value = os.environ.get(name, "")
    if not value and required:
        raise AdapterError(
            f"models.{settings.role}.api_key_env: environment variable {name} is not set "
            f"(it should hold the {settings.backend} API key)"
        )
    return value or None


def slot(settings: RoleSettings) -> threading.BoundedSemaphore:
    """One concurrency limit per backend endpoint, shared by every stage and role using it."""
    key = (settings.backend, settings.base_url, settings.role)
    with _LOCK:
        if key not in _SEMAPHORES:
            _SEMAPHORES[key] = threading.BoundedSemaphore(max(1, settings.max_concurrency))
        return _SEMAPHORES[key]


class RateLimiter:
    """Spaces request starts at least 60/rpm seconds apart (per endpoint, across threads)."""

    def __init__(self, rpm: float) -> None:
        self.interval = 60.0 / rpm
        self.next_start = 0.0
        self.lock = threading.Lock()

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        if start > now:
            sleep(start - now)


_LIMITERS: dict[tuple[str, str | None, str], RateLimiter] = {}


def pace(settings: RoleSettings) -> None:
    if not settings.requests_per_minute:
        return
    key = (settings.backend, settings.base_url, settings.role)
    with _LOCK:
        limiter = _LIMITERS.setdefault(key, RateLimiter(settings.requests_per_minute))
    limiter.wait()


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _retry_after(exc: BaseException) -> float | None:
    """Seconds to wait: retry-after-ms, then Retry-After as seconds or as an HTTP date."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None or not hasattr(headers, "get"):
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


class MalformedResponse(RuntimeError):
    """A 200 answer that is not a model response (HTML, missing fields): retried."""


# A 200 whose body is not a model response (HTML, truncated or non-UTF-8 bytes, missing
# fields) was damaged on the way or by a struggling server: asked again, like a 5xx.
_MALFORMED = ("Malformed", "ResponseValidation", "JSONDecode", "UnicodeDecode")


def retryable(exc: BaseException) -> bool:
    name = type(exc).__name__
    if any(k in name for k in _MALFORMED):
        return True  # checked first: a validation error carries the 200 it came with
    status = _status(exc)
    if status is not None:
        return status in RETRYABLE_STATUS or status >= 500
    return any(k in name for k in ("Timeout", "Connection"))


_LISTENER = threading.local()


@contextmanager
def retry_listener(callback: Callable[[BaseException, int], None]) -> Iterator[None]:
    """Call `callback(error, attempt)` for each transient failure retried in this thread
    (the call journal records them as attempts)."""
    _LISTENER.callback = callback
    try:
        yield
    finally:
        _LISTENER.callback = None


def describe(settings: RoleSettings, exc: BaseException) -> str:
    status = _status(exc)
    where = f"{settings.role} model {settings.model!r} ({settings.backend}"
    where += f" at {settings.base_url})" if settings.base_url else ")"
    detail = str(getattr(exc, "message", "") or exc).splitlines()[0][:300]
    hint = ""
    if status in (401, 403):
        hint = (
            f"; check the key in ${settings.api_key_env}"
            if settings.api_key_env
            else "; set api_key_env"
        )
    elif status == 404:
        hint = "; check the model name (or Azure deployment) and base_url"
    code = f"HTTP {status}" if status is not None else type(exc).__name__
    return f"{where}: {code}: {detail}{hint}"


def with_retries(
    settings: RoleSettings, call: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep
) -> tuple[T, int]:
    """(result, retries). Raises ModelCallError when the call fails for good."""
    deadline = time.monotonic() + settings.retry_deadline_s
    for attempt in range(settings.max_attempts):
        try:
            pace(settings)  # a rate-limit wait must not hold a concurrency slot
            with slot(settings):
                return call(), attempt
        except Exception as exc:  # the SDKs' errors are classified, never swallowed
            last = attempt == settings.max_attempts - 1
            if not retryable(exc) or last:
                why = "" if not retryable(exc) else f" (gave up after {attempt + 1} attempts)"
                raise ModelCallError(describe(settings, exc) + why) from exc
            if (listener := getattr(_LISTENER, "callback", None)) is not None:
                listener(exc, attempt)
            delay = _retry_after(exc)
            if delay is None:
                delay = min(30.0, settings.retry_base_s * 2**attempt) * (0.5 + random.random() / 2)
            if time.monotonic() + delay > deadline:
                raise ModelCallError(describe(settings, exc) + " (retry deadline passed)") from exc
            sleep(delay)
    raise AssertionError("unreachable")


def options_for(settings: RoleSettings, known: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings.options) - set(known))
    if unknown:
        raise AdapterError(
            f"models.{settings.role}.options.{unknown[0]}: unknown option for backend "
            f"{settings.backend} (known: {', '.join(sorted(known)) or 'none'})"
        )
    return {**known, **settings.options}
