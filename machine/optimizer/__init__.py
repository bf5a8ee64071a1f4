"""What the optimizer is asked (prompts, step buffer) and how its replies become values."""
