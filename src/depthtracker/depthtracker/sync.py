"""Approximate-time synchronisation of N message streams (ROS-free), after message_filters' ApproximateTime policy.

``ApproximateTimeSync(num_inputs, queue_size, slop_s)``: feed every message with ``push(input_index, stamp_ns,
item)``; it returns the sets completed by that message (usually zero or one), each a tuple with one item per input.

Semantics: the adaptive algorithm of ``message_filters::sync_policies::ApproximateTime`` (ROS wiki
"message_filters/ApproximateTime"; the C++ policy, which ``ApproximateTimeSynchronizer`` stands for in DESIGN.md),
ported here from its description, with ``slop_s`` as the policy's *max interval duration*. The sets emitted have
these properties:

1. **One message per input per set; no message is used twice.**
2. **Slop.** In every set, ``max(stamps) - min(stamps) <= slop_s`` (inclusive).
3. **Sets do not cross.** Each set is strictly later than the previous one, input by input: once a set is
   emitted, every message at or before its message on an input is gone from that input's queue.
4. **Optimality.** Among the candidate sets that satisfy 1-3, the one with the smallest time span (``max - min``
   of its stamps; with ``age_penalty > 0`` spans ending later are penalised by ``1 + age_penalty``) is emitted.
   The search runs around a *pivot*: the input holding the newest message of the first candidate. The best set
   containing the pivot's message is emitted as soon as it is provably optimal: when every input that could still
   give a better set has a queued message later than the pivot, or when the span already reached cannot be
   improved. Without rate bounds this usually means the set is emitted when the next message of the earliest
   input arrives (a latency of up to one frame period); ``inter_message_lower_bound_s`` (the least period of each
   input, the policy's optional rate bounds) lets it be proved earlier.
5. **Contiguity.** A message is skipped only when no valid set can contain it (it is older than the emitted
   set's message on its input, or no partner lies within slop); skipped messages are dropped silently.

Queues: an input holds at most ``queue_size`` messages (queued plus those set aside during a candidate search);
when a push exceeds that, the search is abandoned, the input's **oldest** message is dropped and counted in
``dropped[input]``, and the search restarts on what is left (as the C++ policy does). An input that dropped a
message cannot serve as pivot until another message of it was considered, so a dropped message never makes a set
look better than it was.

Order: each input's messages must come with non-decreasing stamps (the algorithm keeps queues in arrival order).
A message older than the newest already pushed on its input is **out of order**: it is dropped and counted in
``out_of_order[input]`` (message_filters only warns and then produces crossing sets). Equal stamps are kept.

Headerless messages: with ``allow_headerless=True`` a push with ``stamp_ns=None`` is stamped with ``clock()`` (by
default ``time.time_ns``, i.e. receive time, as message_filters stamps headerless messages with the ROS clock);
otherwise ``None`` raises ``ValueError``.

Not thread-safe: call ``push`` from one thread (one ROS callback group) or guard it with a lock.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ApproximateTimeSync"]

_NO_PIVOT = -1


class ApproximateTimeSync:
    """Adaptive approximate-time synchroniser (see the module docstring for the semantics).

    Args:
        num_inputs: number of streams, >= 2.
        queue_size: most messages held per input, >= 1.
        slop_s: largest span (newest - oldest stamp) of an emitted set, seconds, >= 0.
        allow_headerless: accept ``stamp_ns=None`` and stamp such messages with ``clock()``.
        age_penalty: >= 0; a later set must be ``1 + age_penalty`` times tighter to win (C++ policy; 0 = pure
            span).
        inter_message_lower_bound_s: per input, the least time between two of its messages (0 = unknown); used
            only to emit sets sooner.
        clock: nanosecond clock for headerless messages.

    Attributes:
        dropped: per input, messages dropped because its queue overflowed (oldest first).
        out_of_order: per input, messages dropped because their stamp was older than the newest pushed there.
        emitted: number of sets emitted.
    """

    def __init__(
        self,
        num_inputs: int,
        queue_size: int,
        slop_s: float,
        allow_headerless: bool = False,
        age_penalty: float = 0.0,
        inter_message_lower_bound_s: Sequence[float] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if isinstance(num_inputs, bool) or not isinstance(num_inputs, int) or num_inputs < 2:
            raise ValueError(f"num_inputs must be an integer >= 2, got {num_inputs!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ValueError(f"queue_size must be an integer >= 1, got {queue_size!r}")
        if not isinstance(slop_s, (int, float)) or isinstance(slop_s, bool) or not 0.0 <= slop_s < float("inf"):
            raise ValueError(f"slop_s must be a finite number >= 0, got {slop_s!r}")
        if not isinstance(age_penalty, (int, float)) or not 0.0 <= age_penalty < float("inf"):
            raise ValueError(f"age_penalty must be a finite number >= 0, got {age_penalty!r}")
        bounds = [0.0] * num_inputs if inter_message_lower_bound_s is None else list(inter_message_lower_bound_s)
        if len(bounds) != num_inputs or any(not 0.0 <= b < float("inf") for b in bounds):
            raise ValueError(f"inter_message_lower_bound_s must hold {num_inputs} finite numbers >= 0, got {bounds!r}")
        self.num_inputs = num_inputs
        self.queue_size = queue_size
        self.slop_ns = int(round(slop_s * 1e9))
        self.allow_headerless = bool(allow_headerless)
        self.age_penalty = float(age_penalty)
        self._bounds_ns = [int(round(b * 1e9)) for b in bounds]
        self._clock = clock
        self.dropped = [0] * num_inputs
        self.out_of_order = [0] * num_inputs
        self.emitted = 0
        self.reset()

    def reset(self) -> None:
        """Forget every queued message and the search state (counters are kept)."""
        n = self.num_inputs
        self._deques: list[collections.deque[tuple[int, Any]]] = [collections.deque() for _ in range(n)]
        self._past: list[list[tuple[int, Any]]] = [[] for _ in range(n)]
        self._newest: list[int | None] = [None] * n
        self._has_dropped = [False] * n
        self._non_empty = 0
        self._candidate: list[tuple[int, Any]] | None = None
        self._cand_start = self._cand_end = 0
        self._pivot = _NO_PIVOT
        self._pivot_time = 0
        self._out: list[tuple[Any, ...]] = []

    # -- public ------------------------------------------------------------------------------------------------------
    def push(self, input_index: int, stamp_ns: int | None, item: Any) -> list[tuple[Any, ...]]:
        """Add ``item`` stamped ``stamp_ns`` to input ``input_index``; return the sets it completed (oldest first)."""
        if not 0 <= input_index < self.num_inputs:
            raise ValueError(f"input_index must be in [0, {self.num_inputs - 1}], got {input_index!r}")
        if stamp_ns is None:
            if not self.allow_headerless:
                raise ValueError("a message without a stamp needs allow_headerless=True")
            stamp_ns = int(self._clock())
        stamp_ns = int(stamp_ns)
        newest = self._newest[input_index]
        if newest is not None and stamp_ns < newest:
            self.out_of_order[input_index] += 1
            return []
        self._newest[input_index] = stamp_ns
        i = input_index
        dq = self._deques[i]
        dq.append((stamp_ns, item))
        if len(dq) == 1:
            self._non_empty += 1
            if self._non_empty == self.num_inputs:
                self._process()
        if len(dq) + len(self._past[i]) > self.queue_size:
            # Abandon the search, put every set-aside message back, drop this input's oldest and search again.
            self._non_empty = 0
            for k in range(self.num_inputs):
                self._recover(k, len(self._past[k]))
            dq.popleft()
            if not dq:
                self._non_empty -= 1
            self.dropped[i] += 1
            self._has_dropped[i] = True
            if self._pivot != _NO_PIVOT:
                self._candidate = None
                self._pivot = _NO_PIVOT
                self._process()
        out, self._out = self._out, []
        return out

    def pending(self) -> list[int]:
        """Messages held per input (queued and set aside)."""
        return [len(d) + len(p) for d, p in zip(self._deques, self._past)]

    # -- the policy ---------------------------------------------------------------------------------------------------
    def _recover(self, i: int, count: int) -> None:
        """Move the last ``count`` set-aside messages of input ``i`` back to the front of its queue."""
        past, dq = self._past[i], self._deques[i]
        for _ in range(count):
            dq.appendleft(past.pop())
        if dq:
            self._non_empty += 1

    def _front_bounds(self, virtual: bool) -> tuple[int, int, int, int]:
        """(start_index, start_time, end_index, end_time) over the queue fronts (ties: start lowest, end highest
        index, as the C++ policy). ``virtual``: an empty queue counts at the earliest time its next message can
        have (``max(last set-aside + lower bound, pivot time)``)."""
        s_i = e_i = -1
        s_t = e_t = 0
        for k in range(self.num_inputs):
            dq = self._deques[k]
            if dq:
                t = dq[0][0]
            else:
                assert virtual and self._past[k], "a queue is empty outside a virtual search"
                t = max(self._past[k][-1][0] + self._bounds_ns[k], self._pivot_time)
            if s_i < 0 or t < s_t:
                s_i, s_t = k, t
            if e_i < 0 or t >= e_t:
                e_i, e_t = k, t
        return s_i, s_t, e_i, e_t

    def _move_front_to_past(self, i: int) -> None:
        self._past[i].append(self._deques[i].popleft())
        if not self._deques[i]:
            self._non_empty -= 1

    def _delete_front(self, i: int) -> None:
        self._deques[i].popleft()
        if not self._deques[i]:
            self._non_empty -= 1

    def _make_candidate(self) -> None:
        self._candidate = [dq[0] for dq in self._deques]
        for past in self._past:  # a better candidate: everything set aside before it can never be used
            past.clear()

    def _not_better(self, end_t: int, start_t: int) -> bool:
        return (end_t - self._cand_end) * (1.0 + self.age_penalty) >= (start_t - self._cand_start)

    def _publish(self) -> None:
        assert self._candidate is not None
        self._out.append(tuple(item for _, item in self._candidate))
        self.emitted += 1
        self._candidate = None
        self._pivot = _NO_PIVOT
        self._non_empty = 0
        for k in range(self.num_inputs):  # put set-aside messages back, then drop the one used in the set
            past, dq = self._past[k], self._deques[k]
            while past:
                dq.appendleft(past.pop())
            dq.popleft()
            if dq:
                self._non_empty += 1

    def _process(self) -> None:
        n = self.num_inputs
        while self._non_empty == n:
            s_i, s_t, e_i, e_t = self._front_bounds(virtual=False)
            for k in range(n):
                if k != e_i:
                    self._has_dropped[k] = False
            if self._pivot == _NO_PIVOT:
                if e_t - s_t > self.slop_ns or self._has_dropped[e_i]:
                    # Too wide for a set, or the would-be pivot lost messages: its oldest can join no set.
                    self._delete_front(s_i)
                    continue
                self._make_candidate()
                self._cand_start, self._cand_end = s_t, e_t
                self._pivot, self._pivot_time = e_i, e_t
                self._move_front_to_past(s_i)
            else:
                if self._not_better(e_t, s_t):
                    self._move_front_to_past(s_i)
                else:
                    self._make_candidate()
                    self._cand_start, self._cand_end = s_t, e_t
                    self._move_front_to_past(s_i)
            if s_i == self._pivot:
                self._publish()  # every candidate holding the pivot's message was seen
            elif self._not_better(e_t, self._pivot_time):
                self._publish()  # any later candidate spans [pivot time, e_t] at least: not better
            elif self._non_empty < n:
                self._virtual_search()

    def _virtual_search(self) -> None:
        """Try to prove the candidate optimal from the earliest stamps the empty inputs can still deliver."""
        moves = [0] * self.num_inputs
        while True:
            s_i, s_t, e_i, e_t = self._front_bounds(virtual=True)
            if self._not_better(e_t, self._pivot_time):
                self._publish()
                return
            if not self._not_better(e_t, s_t):
                # An optimistic future candidate beats this one: wait for more messages; undo the virtual moves.
                self._non_empty = 0
                for k in range(self.num_inputs):
                    self._recover(k, moves[k])
                return
            assert s_i != self._pivot and s_t < self._pivot_time
            self._move_front_to_past(s_i)
            moves[s_i] += 1
