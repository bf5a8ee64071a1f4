"""The loop: the reducer folds events into the state, the transition table says what comes next."""
