"""Built-in environments: sim, qa, closed_loop (with its sandbox), and data-file splits."""
