"""The pure core: events, state, reducer, transitions and every decision.

Nothing in this package does I/O, reads a clock, draws a random number or imports an SDK.
"""
