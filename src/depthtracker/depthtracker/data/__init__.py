"""Data: the synthetic world, rosbag2 reading and writing, dataset readers."""
