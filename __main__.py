"""`python -m skillopt ARGS`: the `skillopt` command, with the entry point's signal policy."""

from skillopt.commands.entry import main

main()
