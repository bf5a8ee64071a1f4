"""The closed_loop environment: its initial skill and its task set (reference split layout)."""
