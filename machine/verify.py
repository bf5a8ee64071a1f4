"""`replay --verify`: re-derive every decision from the recorded inputs (stub replaced below)."""
