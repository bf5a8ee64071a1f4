"""The training configuration: our schema, the reference trainer's keys, and fork rules."""
