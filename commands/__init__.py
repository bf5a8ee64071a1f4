"""The imperative shell: stage handlers, the runner loop and the CLI."""
