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
