"""The data of a run: events (the contract), the trainer state they fold into, edits, and the
one way bytes and hashes are derived from values."""
