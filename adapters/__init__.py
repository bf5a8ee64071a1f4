"""The outside world: chat models and environments, behind small protocols."""
