"""Actor core: actors with mailboxes, refs (tell/ask), OTP-style supervision, the clock.

This layer imports nothing from ``wayline.runtime``.
"""

from ._actor import (
    Actor as Actor,
    ActorRef as ActorRef,
    ActorStoppedError as ActorStoppedError,
    run_actor as run_actor,
)
from ._clock import Clock as Clock, SystemClock as SystemClock, TimerHandle as TimerHandle
from ._supervisor import ChildSpec as ChildSpec, Supervisor as Supervisor, SupervisorSpec as SupervisorSpec
from ._timers import SharedTimers as SharedTimers

__all__ = (
    "Actor",
    "ActorRef",
    "ActorStoppedError",
    "ChildSpec",
    "Clock",
    "SharedTimers",
    "Supervisor",
    "SupervisorSpec",
    "SystemClock",
    "TimerHandle",
    "run_actor",
)
