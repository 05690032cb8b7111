"""rosbag2 reading and writing through ``rosbags``: the public entry point.

The topic layout, the typestore and ``BagError`` are in ``bag_format``; the writer and reader in their own modules.
"""

from depthtracker.data.bag_format import STORAGES, BagError, BagSample, msg_definitions_dir, typestore
from depthtracker.data.bag_reader import BagReader
from depthtracker.data.bag_writer import BagWriter

__all__ = ["STORAGES", "BagError", "BagSample", "BagWriter", "BagReader", "typestore", "msg_definitions_dir"]
