"""The `skillopt` command's entry point: one signal policy from the first instruction on.

Ctrl-C (SIGINT) and SIGTERM (what `docker stop`, systemd and Kubernetes send) end any command
with one line and exit 130 / 143, whether they land in the imports, in argument parsing or in
a stage: a stage's open transaction is rolled back as the exception unwinds, every event
recorded before is kept, and the next `skillopt run` continues. The signals raise an exception
of our own (not KeyboardInterrupt, which the CLI library would turn into a silent exit), and
the CLI's modules are imported here, inside its reach. A second signal while the first one
winds down (in-flight model calls finish first) ends the process at once."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType

KEPT = "every event recorded so far is kept; `skillopt run` continues"


class Stopped(BaseException):
    """A signal asked the command to stop: its exit code and what to say."""

    def __init__(self, code: int, word: str) -> None:
        super().__init__(word)
        self.code, self.word = code, word


def _stopper(code: int, word: str) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second signal: no more waiting
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Stopped(code, word)

    return handler


def main() -> None:
    signal.signal(signal.SIGINT, _stopper(130, "interrupted"))
    signal.signal(signal.SIGTERM, _stopper(143, "terminated"))
    try:
        from skillopt.commands.cli import app

        app(prog_name="skillopt")
    except Stopped as stop:
        sys.stderr.write(f"{stop.word}: {KEPT}\n")
        sys.exit(stop.code)
    except KeyboardInterrupt:  # raised by code of its own, not by our handler
        sys.stderr.write(f"interrupted: {KEPT}\n")
        sys.exit(130)
