"""How console-script nodes end: a configuration error exits 2 for the launcher's respawn policy; a stop that arrives
while the node is still starting (say, loading its models) is a clean exit."""

from __future__ import annotations

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
