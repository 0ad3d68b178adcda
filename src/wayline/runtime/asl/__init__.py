"""The Amazon States Language interpreter: pure, async, resumable.

Build a :class:`StateMachine` from a definition (validated at construction), then run it
with :func:`execute` on any :class:`AslHost` (the durable runtime's, or :class:`LocalHost`
in memory).
"""

from ._errors import AslDefinitionError as AslDefinitionError, StatesError as StatesError
from ._host import AslHost as AslHost
from ._interpreter import execute as execute, prepare_redrive as prepare_redrive
from ._local import LocalHost as LocalHost
from ._machine import StateMachine as StateMachine

__all__ = (
    "AslDefinitionError",
    "AslHost",
    "LocalHost",
    "StateMachine",
    "StatesError",
    "execute",
    "prepare_redrive",
)
