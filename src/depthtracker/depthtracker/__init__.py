"""depthtracker: multi-camera depth, detection and tracking for ROS 2, with a ROS-free core.

The core (everything but :mod:`depthtracker.ros`) needs only NumPy, SciPy, OpenCV and PyTorch; the ROS nodes live in
:mod:`depthtracker.ros` and are the only place that imports rclpy or message packages.
"""

__version__ = "0.1.0"
