"""How console-script nodes end: a configuration error exits 2 for the launcher's respawn policy; a stop that arrives
while the node is still starting (say, loading its models) is a clean exit; so is a ROS call that fails because the
stop shut the context down; a second signal during teardown is not swallowed."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import requires_ros

pytestmark = [requires_ros, pytest.mark.ros]


def test_a_configuration_error_exits_2_and_a_stop_during_start_up_exits_cleanly(ros_env, monkeypatch) -> None:
    import rclpy
    from depthtracker.ros.runtime import run_node

    for k, v in ros_env.items():
        monkeypatch.setenv(k, v)

    def bad_parameter():
        raise ValueError("parameter rate must be positive")

    with pytest.raises(SystemExit) as exc:
        run_node(bad_parameter, "runtime_test")
    assert exc.value.code == 2 and not rclpy.ok()

    def stopped_while_loading():
        rclpy.shutdown()  # what the SIGINT/SIGTERM handler does; the node's next ROS call then fails
        raise ValueError("configure failed")

    run_node(stopped_while_loading, "runtime_test")  # returns: no SystemExit, so status 0
    assert not rclpy.ok()


def test_a_ros_call_failing_after_a_stop_is_that_stop_and_before_it_an_error(ros_env, monkeypatch) -> None:
    import rclpy
    from depthtracker.ros.runtime import run_node
    from rclpy.node import Node

    for k, v in ros_env.items():
        monkeypatch.setenv(k, v)

    def node_failing(after_stop: bool):
        def factory() -> Node:
            node = Node("runtime_test")

            def tick() -> None:
                if after_stop:
                    rclpy.shutdown()  # what the SIGINT/SIGTERM handler does from its own thread
                # what rclpy raises for a call caught between the two (an RCLError is a RuntimeError)
                raise RuntimeError("failed to initialize wait set: the given context is not valid")

            node.create_timer(0.01, tick)
            return node
        return factory

    run_node(node_failing(after_stop=True), "runtime_test")  # returns: a clean exit
    assert not rclpy.ok()
    with pytest.raises(RuntimeError, match="context is not valid"):
        run_node(node_failing(after_stop=False), "runtime_test")  # no stop came: a real error, raised
    assert not rclpy.ok()


SLOW_TEARDOWN = textwrap.dedent("""
    import time
    from depthtracker.ros.runtime import run_node
    from rclpy.node import Node

    class SlowTeardown(Node):
        def __init__(self):
            super().__init__("slow_teardown")
            self.create_timer(0.05, lambda: print("spinning", flush=True))

        def destroy_node(self):
            print("tearing down", flush=True)
            time.sleep(60)  # a teardown that hangs (say, in the middleware)
            super().destroy_node()

    run_node(SlowTeardown, "slow_teardown")
""")


def test_a_second_sigterm_during_a_hung_teardown_ends_the_node(ros_env) -> None:
    """After SIGINT shut it down, the node tears down; a launcher that runs out of patience asks for its stacks
    (SIGUSR1) and sends SIGTERM, which must end the process (rclpy's handlers, still installed, swallowed it: the
    launcher then needed SIGKILL)."""
    proc = subprocess.Popen([sys.executable, "-c", SLOW_TEARDOWN], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "spinning", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        while (line := proc.stdout.readline().strip()) == "spinning":
            pass
        assert line == "tearing down", proc.stderr.read()
        proc.send_signal(signal.SIGUSR1)  # what the launcher sends first: where is it stuck?
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
        assert re.search(r"File .*, line \d+ in destroy_node", proc.stderr.read())  # the stack of the hung teardown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


STUCK_EXECUTOR = textwrap.dedent("""
    import os, sys, time
    from depthtracker.ros.runtime import run_node
    from rclpy.node import Node

    FLAG = sys.argv[1]

    class Stuck(Node):
        def __init__(self):
            super().__init__("stuck_executor")
            self.first = not os.path.exists(FLAG)
            open(FLAG, "w").close()
            print("first life" if self.first else "second life", flush=True)
            self.create_timer(1.5, self.callback_that_never_returns)

        def callback_that_never_returns(self):
            if self.first:
                while True:
                    time.sleep(0.05)  # a callback that never returns: the executor stops
            print("spinning", flush=True)

    run_node(Stuck, "stuck_executor")
""")


def test_the_launcher_watchdog_restarts_a_node_whose_executor_is_stuck(ros_env, tmp_path) -> None:
    """A node's executor writes its heartbeat (run_node, when the launcher names the file); a callback that never
    returns stops it, and the launcher kills the node, with its stacks, and respawns it."""
    import dataclasses

    from depthtracker.ros.launch_plan import STAGE_NODES, Child
    from depthtracker.ros.launcher import run_children

    child = Child("stuck", (sys.executable, "-c", STUCK_EXECUTOR, str(tmp_path / "flag")), STAGE_NODES, True)
    child = dataclasses.replace(child, stack_dump=True, heartbeat=True)
    log: list = []
    status = run_children([child], respawn_delay=0.2, duration_s=12.0, log=log.append, env=ros_env,
                          watchdog_s=3.0)
    lines = [str(line) for line in log]
    assert status == 0, lines
    assert sum("[launch] stuck: no heartbeat for" in line for line in lines) == 1, lines
    assert any(line.startswith("[stuck]") and "in callback_that_never_returns" in line for line in lines), lines
    assert "[stuck] second life" in lines and "[stuck] spinning" in lines, lines
