"""The installed skillopt's version, recorded in run.created and bench.started."""

from __future__ import annotations


def skillopt_version() -> str:
    # importlib.metadata reads the installed distribution: a source tree without one says so.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("skillopt")
    except PackageNotFoundError:
        return "0+unknown"
