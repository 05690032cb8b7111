"""ApproximateTimeSync: exact and approximate pairing, slop, overflow, out-of-order stamps, many jittery inputs."""

import numpy as np
import pytest
from depthtracker.sync import ApproximateTimeSync

MS = 1_000_000
PERIOD = 33 * MS


def feed(sync, events):
    """Push (input, stamp_ns) events (item = (input, stamp)); return every emitted set."""
    out = []
    for i, t in events:
        out += sync.push(i, t, (i, t))
    return out


def test_exact_pairs_are_emitted_at_once():
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.0)
    for k in range(5):
        assert sync.push(0, k * PERIOD, ("a", k)) == []
        assert sync.push(1, k * PERIOD, ("b", k)) == [(("a", k), ("b", k))]
    assert sync.emitted == 5 and sync.pending() == [0, 0]


def test_three_exact_inputs():
    sync = ApproximateTimeSync(3, queue_size=5, slop_s=0.001)
    sets = feed(sync, [(i, k * PERIOD) for k in range(4) for i in (2, 0, 1)])
    assert [tuple(t for _, t in s) for s in sets] == [(k * PERIOD,) * 3 for k in range(4)]


def test_approximate_pairs_within_slop():
    # b lags a by 5 ms; slop 10 ms: every pair forms (emitted once the next a proves it optimal).
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.010)
    events = []
    for k in range(6):
        events += [(0, k * PERIOD), (1, k * PERIOD + 5 * MS)]
    sets = feed(sync, events)
    assert [(a[1], b[1]) for a, b in sets] == [(k * PERIOD, k * PERIOD + 5 * MS) for k in range(5)]


def test_no_pairs_beyond_slop():
    # b sits 20 ms after a and 13 ms before the next a: nothing lies within 10 ms.
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.010)
    events = []
    for k in range(10):
        events += [(0, k * PERIOD), (1, k * PERIOD + 20 * MS)]
    assert feed(sync, events) == []
    assert max(sync.pending()) <= 5


def test_the_tightest_set_wins():
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.050)
    assert feed(sync, [(0, 0), (1, 20 * MS)]) == []  # candidate (a0, b20), span 20 ms: a later a may do better
    assert feed(sync, [(0, 30 * MS)]) == [((0, 30 * MS), (1, 20 * MS))]  # span 10 ms: better, and provably best


def test_overflow_drops_oldest_and_counts():
    sync = ApproximateTimeSync(2, queue_size=3, slop_s=0.001)
    assert feed(sync, [(0, k * PERIOD) for k in range(5)]) == []
    assert sync.dropped == [2, 0] and sync.pending() == [3, 0]
    # The three newest are still there: a partner for the 3rd oldest pairs with it.
    assert feed(sync, [(1, 2 * PERIOD)]) == [((0, 2 * PERIOD), (1, 2 * PERIOD))]
    # ... and one for a dropped stamp finds nothing.
    sync2 = ApproximateTimeSync(2, queue_size=3, slop_s=0.001)
    feed(sync2, [(0, k * PERIOD) for k in range(5)])
    assert feed(sync2, [(1, 0)]) == []


def test_out_of_order_stamps_are_dropped_and_counted():
    sync = ApproximateTimeSync(2, queue_size=5, slop_s=0.001)
    assert feed(sync, [(0, 100 * MS), (0, 50 * MS), (0, 100 * MS)]) == []  # 50 is late; equal stamps are kept
    assert sync.out_of_order == [1, 0]
    sets = feed(sync, [(1, 100 * MS)])
    assert sets == [((0, 100 * MS), (1, 100 * MS))]
    # An input older than what was already emitted is out of order too.
    assert feed(sync, [(1, 90 * MS)]) == [] and sync.out_of_order == [1, 1]


def test_headerless_needs_permission():
    with pytest.raises(ValueError, match="allow_headerless"):
        ApproximateTimeSync(2, 5, 0.01).push(0, None, "x")
    clock = iter([7 * MS, 7 * MS])
    sync = ApproximateTimeSync(2, 5, 0.0, allow_headerless=True, clock=lambda: next(clock))
    assert sync.push(0, None, "a") == [] and sync.push(1, None, "b") == [("a", "b")]


@pytest.mark.parametrize("bad", [dict(num_inputs=1), dict(queue_size=0), dict(slop_s=-1.0),
                                 dict(slop_s=float("nan")), dict(age_penalty=-0.5)])
def test_bad_arguments_name_the_value(bad):
    kwargs = dict(num_inputs=2, queue_size=5, slop_s=0.01) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        ApproximateTimeSync(**kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_four_jittery_inputs(seed):
    """4 cameras at 30 Hz, +-4 ms jitter, random arrival order within a frame, occasional lost messages."""
    rng = np.random.default_rng(seed)
    n, frames, slop = 4, 200, 0.010
    sync = ApproximateTimeSync(n, queue_size=10, slop_s=slop)
    events = []
    for k in range(frames):
        stamps = (k + 1) * PERIOD + rng.integers(-4 * MS, 4 * MS, size=n)
        for i in rng.permutation(n):
            if rng.random() > 0.03:  # 3 % of messages never arrive
                events.append((int(i), int(stamps[i])))
    sets = feed(sync, events)
    assert len(sets) > 0.8 * frames
    used = set()
    last = [-1] * n
    for s in sets:
        stamps = [t for _, t in s]
        assert [i for i, _ in s] == list(range(n))
        assert max(stamps) - min(stamps) <= slop * 1e9  # within slop
        for i, t in s:
            assert (i, t) not in used  # no message twice
            used.add((i, t))
            assert t > last[i]  # sets in increasing time, input by input
            last[i] = t
        # A set holds one frame's messages: jitter 8 ms << period, so no set mixes frames.
        assert len({round(t / PERIOD) for t in stamps}) == 1
    assert sync.out_of_order == [0] * n
