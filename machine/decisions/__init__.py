"""Pure decisions from recorded numbers: gate, scores, plans, budgets, the skill document."""
