"""QoS profiles of the graph (DESIGN.md §1): sensor-data camera inputs (reliability a parameter), reliable outputs."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def camera_qos(reliability: str, depth: int = 5) -> QoSProfile:
    """Sensor-data QoS (keep last ``depth``, volatile) with ``reliability`` ``best_effort`` or ``reliable``.

    Drivers differ (many publish best-effort, some reliable); a reliable subscriber never matches a best-effort
    publisher, so this is a parameter on both sides rather than a guess.
    """
    if reliability not in RELIABILITY:
        raise ValueError(f"reliability must be one of {sorted(RELIABILITY)}, got {reliability!r}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=RELIABILITY[reliability],
                      durability=DurabilityPolicy.VOLATILE)


def output_qos(depth: int = 10) -> QoSProfile:
    """Reliable, volatile, keep last ``depth``: what the graph's consumers subscribe with by default."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """Reliable + transient-local depth 1, as ``/tf_static`` uses, so late subscribers get the rig."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class MissedMessages:
    """Counts the messages a subscription never took, from the publishers' own sequence numbers.

    A keep-last queue overwrites its oldest message when the executor falls ``depth`` messages behind, and a
    best-effort link can lose one on the wire; neither is visible in the messages that do arrive. Each publisher
    numbers what it writes (``MessageInfo['publication_sequence_number']``, per ``publisher_gid``), so a jump from
    n to n + k + 1 means k messages were missed. Counting starts at the first message heard from each publisher
    (it may have published before the match). A late message counted as missed is taken back. A middleware that
    gives no sequence number counts nothing and sets ``unsupported``.
    """

    def __init__(self) -> None:
        self.missed = 0
        self.unsupported = False
        self._last: dict[bytes, int] = {}

    def update(self, info: dict) -> int:
        """Records one taken message (its ``MessageInfo``); returns how many of its publisher's were skipped."""
        seq, gid = info.get("publication_sequence_number"), info.get("publisher_gid")
        if seq is None or not gid:
            self.unsupported = True
            return 0
        key = bytes(gid.get("data", b"")) + str(gid.get("implementation_identifier", "")).encode()
        last = self._last.get(key)
        if last is None:
            self._last[key] = seq
            return 0
        if seq <= last:  # out of order: it was counted as missed when a later one came first
            self.missed = max(self.missed - 1, 0) if seq < last else self.missed
            return 0
        self._last[key] = seq
        gap = seq - last - 1
        self.missed += gap
        return gap
