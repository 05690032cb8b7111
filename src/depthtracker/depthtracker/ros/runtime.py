"""How our processes run rclpy: console-script nodes, and self-contained nodes inside a CLI command."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions, uninstall_signal_handlers

from depthtracker.ros.launcher import HEARTBEAT_ENV, HEARTBEAT_PERIOD_S, enable_stack_dumps

T = TypeVar("T")


def run_node(factory: Callable[[], Node], logger_name: str, args: list[str] | None = None) -> None:
    """``main()`` of a node's console script: init, spin until Ctrl-C or SIGTERM, tear down.

    A ``ValueError`` or ``ParameterException`` while building the node (bad parameters or config) is logged as
    FATAL with its message and exits with status 2, so a launcher's respawn policy sees a configuration error. One
    raised after Ctrl-C or SIGTERM shut the context down (a stop that arrives while the node loads its models makes
    its next ROS call fail) is that stop, not a configuration error: a clean exit, logged as such; so is any
    ``RuntimeError`` (rclpy's ``RCLError``) raised once a signal has shut the context down.
    """
    enable_stack_dumps()  # SIGUSR1 prints every thread's stack (a launcher asks before it escalates a stop)
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        _start_heartbeat(node)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C, or SIGTERM from a launcher: a clean exit
    except RuntimeError as exc:
        # rclpy's signal handler shuts the context down from another thread; a ROS call caught in between raises
        # RCLError ("the given context is not valid", seen in the executor building its wait set) instead of
        # ExternalShutdownException. After a signal that is the stop; otherwise it is a real error.
        if rclpy.ok():
            raise
        rclpy.logging.get_logger(logger_name).info(f"stopped ({exc})")
    except (ValueError, ParameterException) as exc:
        if not rclpy.ok():
            rclpy.logging.get_logger(logger_name).info(f"stopped during start-up ({exc})")
            return
        rclpy.logging.get_logger(logger_name).fatal(f"bad parameter or configuration: {exc}")
        raise SystemExit(2) from exc
    finally:
        # Leaving spin means stopping. rclpy's handlers stay installed after a signal and would swallow every further
        # signal while the node tears down (measured: a second SIGTERM ignored for as long as teardown took); without
        # them a second SIGTERM (a launcher's escalation) ends the process at once and a second Ctrl-C raises
        # KeyboardInterrupt. Unconditional: after Ctrl-C, KeyboardInterrupt can arrive here before rclpy's own thread
        # has shut the context down (rclpy.ok() still true), a race the test of this once lost.
        uninstall_signal_handlers()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def _start_heartbeat(node: Node) -> None:
    """When the launcher asks (``HEARTBEAT_ENV`` names a file), write ``time.monotonic()`` into that file now and
    every ``HEARTBEAT_PERIOD_S`` from a timer of this node's executor on the steady clock (simulated time may stop):
    the heartbeat stops when the executor does, which the launcher's watchdog then sees."""
    path = os.environ.get(HEARTBEAT_ENV)
    if not path:
        return
    tmp = f"{path}.tmp"

    def beat() -> None:
        try:
            with open(tmp, "w") as f:
                f.write(repr(time.monotonic()))
            os.replace(tmp, path)  # the launcher never reads half a number
        except OSError as exc:  # a full disk must not stop the node; the launcher's watchdog will act on it
            node.get_logger().warning(f"cannot write the watchdog heartbeat {path}: {exc}",
                                      throttle_duration_sec=60.0)

    beat()
    node.create_timer(HEARTBEAT_PERIOD_S, beat, clock=Clock(clock_type=ClockType.STEADY_TIME))


@contextlib.contextmanager
def standalone_node(name: str, stop: threading.Event) -> Iterator[tuple[Node, Any]]:
    """A node on its own rclpy context and executor, for commands such as record and play.

    SIGINT and SIGTERM set ``stop`` (when called from the main thread) instead of raising, so the command can
    finish cleanly (close its bag); the previous handlers come back on exit.
    """
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        for sig, old in handlers.items():
            signal.signal(sig, old)


class DiscoveryStall(RuntimeError):
    """A node of a graph this process started stayed unseen, or two of its nodes did not hear each other: a discovery
    stall of the middleware (Fast DDS with the large-data transport; README, *Evaluation through the graph*).
    Waiting longer does not end it; a new start of the graph does (``start_with_restarts``)."""


def check_discovery(node: Node, started: dict[str, float], timeout_s: float) -> list[str]:
    """The nodes of ``started`` (node name -> ``time.monotonic()`` at its process's last start, as ``run_graph``'s
    ``on_start`` reports it) that ``node`` does not see on the ROS graph yet; ``DiscoveryStall`` when one of them has
    run unseen for more than ``timeout_s``."""
    now, seen = time.monotonic(), {name for name, _ in node.get_node_names_and_namespaces()}
    unseen = sorted(n for n, t in list(started.items()) if n not in seen)
    late = [n for n in unseen if now - started[n] > timeout_s]
    if late:
        raise DiscoveryStall(f"this process did not see the {' and '.join(late)} node on the ROS graph within "
                             f"{timeout_s:g} s of its start")
    return unseen


def start_with_restarts(start_once: Callable[[], T], attempts: int, log: Callable[[str], None]) -> T:
    """``start_once()`` (one start of a graph and the work done on it), started again after a ``DiscoveryStall``,
    up to ``attempts`` starts in all; then ``TimeoutError``. Each restart is logged."""
    for attempt in range(1, attempts + 1):
        try:
            return start_once()
        except DiscoveryStall as exc:
            if attempt == attempts:
                raise TimeoutError(f"{exc} (graph started {attempt} times); see the graph's log") from None
            log(f"{exc}: a discovery stall of the middleware (Fast DDS, large-data transport); starting the graph "
                f"again ({attempt + 1} of {attempts})")
    raise ValueError(f"start_with_restarts: attempts must be >= 1, got {attempts}")
