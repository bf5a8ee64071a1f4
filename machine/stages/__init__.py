"""Sans-IO stages: each stage's decision, written once.

A stage is a pure function of (command, state, blob reader). One that needs the optimizer is a
generator: it yields an `Asking` per call and receives the `Answer` (the parsed value, or why
none, with the call records); it returns a `Decision`: the events, and the texts they refer to
by sha256. The shell (`commands/stages/`) drives it with real calls through the call journal;
`replay --verify` drives the very same function with the replies the ledger recorded and
compares the events it returns with the recorded ones. No rule lives in both places.
"""
