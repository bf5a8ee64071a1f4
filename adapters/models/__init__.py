"""Chat model backends: anthropic, openai (and compatible servers), offline."""
