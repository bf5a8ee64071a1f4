"""Text files a user names (an initial skill, a `--skill` file): UTF-8 text, or one line that
names the file (InputError, exit 2)."""

from __future__ import annotations

from pathlib import Path

from skillopt.commands.errors import InputError


def read_text(path: Path, what: str) -> str:
    """The text of `path`; `what` names it in the message ("initial skill file", ...)."""
    if not path.is_file():
        raise InputError(f"{what} {path} not found")
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
