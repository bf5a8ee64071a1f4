"""Errors the CLI maps to exit codes: InputError -> 2, CheckFailed/RunFailed -> 1."""


class InputError(Exception):
    """Bad input: config, file, name, dataset. One line that names the culprit; exit 2."""


class CheckFailed(Exception):
    """A verification found a problem; exit 1."""


class RunFailed(Exception):
    """A stage failed (recorded as stage.failed) or another writer got there first; exit 1."""
