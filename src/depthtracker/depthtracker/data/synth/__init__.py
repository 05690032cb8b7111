"""The synthetic world: a rig of cameras over a textured room with moving objects, exact depth and ground truth.

It is the embedded default dataset of the demo, the tests and training. See ``world`` for usage, ``render`` for
the definition of visibility, ``rig`` for the camera layout and ``motion`` for the object dynamics.
"""

from depthtracker.data.synth.config import SynthConfig
from depthtracker.data.synth.motion import ObjectStates
from depthtracker.data.synth.objects import CLASS_NAMES, ObjectSpec
from depthtracker.data.synth.world import SynthSample, SynthWorld

__all__ = ["CLASS_NAMES", "ObjectSpec", "ObjectStates", "SynthConfig", "SynthSample", "SynthWorld"]
