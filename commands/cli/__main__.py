"""`python -m skillopt.commands.cli ARGS`: the same as `python -m skillopt ARGS`, which goes
through commands/entry.py (SIGINT and SIGTERM end it with one line and exit 130 / 143). Run
by name, not imported: the entry point imports this package, never the other way round."""

import runpy

if __name__ == "__main__":
    runpy.run_module("skillopt", run_name="__main__", alter_sys=True)
