"""skillopt: train skill documents for frozen LLMs, with an event-sourced ledger as the source
of truth.

The repository root is the `skillopt` package: its folders (`machine`, `ledger`, `commands`,
`adapters`, `skills`, `migrations`) install as `skillopt.machine`, `skillopt.ledger`, ...
"""
