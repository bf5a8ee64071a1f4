"""`python -m skillopt.commands.cli ARGS`: the CLI itself. The `skillopt` command and
`python -m skillopt` go through commands/entry.py, which also handles SIGTERM and signals that
land while the CLI is being imported."""

from skillopt.commands.cli import main

if __name__ == "__main__":
    main()
