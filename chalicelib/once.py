"""Values made once per key, however many threads ask for them at once.

`functools.lru_cache` lets every thread that misses at once make its own value: the first sends of a
dispatch invocation (50 threads) each built the provider's adapter, and its 8 httpx clients with it, an SSL
context each (22 ms of CPU): about 9 s of CPU before the first request left (seen in the fault suite: 28
sends past the point where a refused account should have stopped them). Here the first thread makes it,
under a lock, and the others wait for it (decision 52).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class MadeOnce(Generic[P, T]):
    """`make` memoised on its positional arguments; the oldest of more than `maxsize` values is forgotten
    (None: none is)."""

    def __init__(self, make: Callable[P, T], maxsize: int | None) -> None:
        self._make = make
        self._maxsize = maxsize
        self._made: dict[tuple[Hashable, ...], T] = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, make)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        if kwargs:
            raise TypeError("made_once takes positional arguments only")
        found = self._made.get(args)
        if found is None:
            with self._lock:
                found = self._made.get(args)
                if found is None:
                    found = self._made[args] = self._make(*args, **kwargs)
                    while self._maxsize is not None and len(self._made) > self._maxsize:
                        del self._made[next(iter(self._made))]
        return found

    def cache_clear(self) -> None:
        with self._lock:
            self._made.clear()


def made_once(maxsize: int | None = 8) -> Callable[[Callable[P, T]], MadeOnce[P, T]]:
    def decorate(make: Callable[P, T]) -> MadeOnce[P, T]:
        return MadeOnce(make, maxsize)

    return decorate
