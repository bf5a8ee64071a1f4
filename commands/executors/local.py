"""The local executor: units run in threads of this process, results handed back in input order.

Units finish in any order; results are released as the finished prefix grows, so the ledger
gets the same events in the same order whatever the worker count or the timing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from skillopt.commands.executors import Port

T = TypeVar("T")
S = TypeVar("S")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], inputs: Sequence[T], workers: int) -> Iterator[R]:
    if workers <= 1 or len(inputs) <= 1:
        for x in inputs:
            yield fn(x)
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(fn, x) for x in inputs]
        for future in futures:
            yield future.result()
    finally:
        # On an error (or a consumer that stops early) drop the queued units.
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class LocalExecutor:
    """Units in threads, over the run's own port (its environment and models, built once)."""

    port: Port

    def ordered(
        self, work: Callable[[S, T, Port], R], shared: S, units: Sequence[T], width: int
    ) -> Iterator[R]:
        return ordered_map(lambda unit: work(shared, unit, self.port), units, width)

    def close(self) -> None:
        pass
