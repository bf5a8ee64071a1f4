"""The shape of `status_view`'s dict, as a number stored next to each recorded status view.

Bump it whenever `status_view` (or `phase_of`, or the spending it shows) changes what it
returns for the same state: a view stored by another skillopt is then never shown, and status
folds the run instead. Kept apart from machine/reports/views.py so that reading a stored view imports
nothing else of the core."""

STATUS_FORMAT = 2  # 2: `unusable` replies per stage
