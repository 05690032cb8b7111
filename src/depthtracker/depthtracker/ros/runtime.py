"""How our processes run rclpy: console-script nodes, and self-contained nodes inside a CLI command."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


def run_node(factory: Callable[[], Node], logger_name: str, args: list[str] | None = None) -> None:
    """``main()`` of a node's console script: init, spin until Ctrl-C or SIGTERM, tear down.

    A ``ValueError`` or ``ParameterException`` while building the node (bad parameters or config) is logged as
    FATAL with its message and exits with status 2, so a launcher's respawn policy sees a configuration error. One
    raised after Ctrl-C or SIGTERM shut the context down (a stop that arrives while the node loads its models makes
    its next ROS call fail) is that stop, not a configuration error: a clean exit, logged as such.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C, or SIGTERM from a launcher: a clean exit
    except (ValueError, ParameterException) as exc:
        if not rclpy.ok():
            rclpy.logging.get_logger(logger_name).info(f"stopped during start-up ({exc})")
            return
        rclpy.logging.get_logger(logger_name).fatal(f"bad parameter or configuration: {exc}")
        raise SystemExit(2) from exc
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


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
