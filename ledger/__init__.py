"""The event store: runs, append-only hash-chained events, content-addressed blobs."""
