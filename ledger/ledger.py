"""The ledger: a database of runs, their hash-chained events, the texts those refer to
(blobs), and beside the chain each run's status view and measured timings. Each concern is a
mixin in a module of its own; the call journal (ledger/journal.py) is a class over a ledger.

    ledger = Ledger.open("runs.db", create=True)   # database.py: open, upgrade, transactions
    ledger.create_run(...); ledger.find_run(name)  # runs.py
    ledger.append(run_id, seq, events, stamp)      # events.py: read, append, check_chain
    ledger.put_blobs(texts); ledger.get_blob(h)    # blobs.py
    ledger.status_view(run_id)                     # views.py (written by every append)
    ledger.put_timing(run_id, seq, seconds)        # timings.py
"""

from __future__ import annotations

from skillopt.ledger.blobs import Blobs
from skillopt.ledger.events import Events
from skillopt.ledger.runs import Runs
from skillopt.ledger.timings import Timings
from skillopt.ledger.views import StatusViews


class Ledger(Runs, Events, StatusViews, Blobs, Timings):
    """An open ledger (`Ledger.open(db)`); close it when done."""
