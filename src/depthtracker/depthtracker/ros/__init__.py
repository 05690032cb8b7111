"""ROS 2 nodes and conversions: the only part of depthtracker that imports rclpy or message packages."""
