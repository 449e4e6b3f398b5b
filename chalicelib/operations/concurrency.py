"""A campaign's concurrency limit as one dispatch invocation applies it (decision 28).

The invocation takes slots from the store (`store.slots`) as its sending threads need them, keeps each one
for its next send of the campaign when a send ends (no write per attempt while it sends), and gives all
back when it ends. A thread finding no slot idle in the invocation waits for one of its neighbours' sends
to end; one thread at a time, at most every `PROBE_SECONDS`, asks the store for another (a slot another
invocation gave back, or one whose dead holder's lease ran out).

The slots are leased until the invocation's own end (its time left, plus a margin): a worker that dies
holding slots leaves them taken no longer than a live one could have held them.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from chalicelib.store import slots

PROBE_SECONDS = 0.2
# A slot's lease runs this long past the end of the invocation that took it.
LEASE_MARGIN_SECONDS = 30.0


class NoSlot(RuntimeError):
    """No slot came free before the time given."""


class SlotPool:
    """The slots of one campaign held by one dispatch invocation."""

    def __init__(self, campaign_pk: str, lease_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.campaign_pk = campaign_pk
        self.holder = secrets.token_hex(8)
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._condition = threading.Condition()
        self._idle: list[int] = []  # held, not sending
        self._held: set[int] = set()
        self._handed: set[int] = set()  # passed on to a call awaiting its events (`hand_over`)
        self._next_probe = 0.0
        self._size = 0  # the limit as last given (a PATCH can lower it while the invocation sends)

    def acquire(self, size: int, until: float) -> int:
        """One of the campaign's `size` slots, for one attempt (give it to `release` when the attempt ends);
        NoSlot when none came free by `until` (time.monotonic())."""
        self._size = size
        return self._acquire(size, until)

    def close(self) -> None:
        """Give back every slot held (the invocation ends; no send of it is under way)."""
        with self._condition:
            held, self._held, self._idle = sorted(self._held), set(), []
        for index in held:
            slots.give_back(self.campaign_pk, index, self.holder)

    def _acquire(self, size: int, until: float) -> int:
        while True:
            with self._condition:
                while True:
                    for index in list(self._idle):
                        self._idle.remove(index)
                        if index < size:
                            return index
                        self._give_back_locked(index)  # the limit went down: above it, a slot is not used
                    now = time.monotonic()
                    if now >= self._next_probe:
                        self._next_probe = now + PROBE_SECONDS
                        break
                    if now >= until:
                        raise NoSlot(f"no slot of {size} came free")
                    self._condition.wait(min(until, self._next_probe) - now)
            now = self._clock()
            got = slots.take_one(self.campaign_pk, size, self.holder, now + self._lease_seconds, now)
            if got is not None:
                with self._condition:
                    self._held.add(got)
                return got

    def hand_over(self, index: int, holder: str, until: float) -> bool:
        """The attempt goes on without this invocation (a call awaiting its events): the slot is leased to
        `holder` until `until` (its events give it back, or the lease runs out), and leaves this pool: its
        `release` then does nothing. False (and the slot kept here) if this pool no longer held it."""
        if not slots.hand_over(self.campaign_pk, index, self.holder, holder, until):
            return False
        with self._condition:
            self._held.discard(index)
            self._handed.add(index)
        return True

    def release(self, index: int) -> None:
        with self._condition:
            if index in self._handed:
                self._handed.discard(index)
                return
            if index < self._size:
                self._idle.append(index)
                self._condition.notify()
                return
            self._give_back_locked(index)

    def _give_back_locked(self, index: int) -> None:
        self._held.discard(index)
        slots.give_back(self.campaign_pk, index, self.holder)
