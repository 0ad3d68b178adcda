"""Test kit for wayline users: a virtual clock and a store that crashes on cue."""

from ._clock import VirtualClock as VirtualClock
from ._faults import FaultInjectingStore as FaultInjectingStore, SimulatedCrash as SimulatedCrash

__all__ = ("FaultInjectingStore", "SimulatedCrash", "VirtualClock")
