"""The Amazon States Language interpreter: pure, async, resumable.

Build a :class:`StateMachine` from a definition (validated and compiled at construction),
then run it with :func:`execute` on any :class:`AslHost`: the durable runtime's, or
:class:`LocalHost` in memory.

Every effect goes through the host: the clock and durable timers (Wait, retry backoff),
task calls, callback tokens, child runs (``.sync`` tasks, distributed Map items) and
checkpoints. A checkpoint hands the host a *snapshot*, a JSON-compatible dict::

    {"v": 1, "status": "RUNNING" | "SUCCEEDED" | "FAILED", "event_id": <last history id>,
     "context": {"Execution": {...}, "StateMachine": {...}},   # the $$ object's fixed part
     "deadline": <epoch seconds, if the machine has TimeoutSeconds>,
     "frame": <frame>,                                         # while RUNNING or FAILED
     "output": ... | "error": ..., "cause": ...}               # once finished

    <frame> = {"state": <current state>, "input": <its raw input>, "vars": {<variables>},
               "retries": [<attempts per retrier>], "wake": <timer deadline>,
               "token": <callback token>, "invoked": <callback task sent>,
               "sub": {"done": {"<index>": <result>}, "running": {"<index>": <frame>},
                       "failed": <count>}}                     # a Map/Parallel in progress

Passing a snapshot back as ``execute(..., resume=snapshot)`` continues the run where it
stopped: finished states, branches and Map items are not run again. In ``"standard"``
mode the machine checkpoints after every transition of its top level, and inside Map and
Parallel whenever something outside the process happened; in ``"express"`` mode only
before waiting (timers, callbacks, child runs) and at the end.
"""

from ._budget import ExpressionBudget as ExpressionBudget
from ._errors import (
    AslDefinitionError as AslDefinitionError,
    ExpressionBudgetError as ExpressionBudgetError,
    ResourceError as ResourceError,
    StatesError as StatesError,
)
from ._execute import execute as execute, prepare_redrive as prepare_redrive
from ._host import AslHost as AslHost
from ._local import LocalHost as LocalHost
from ._machine import StateMachine as StateMachine, call_resource as call_resource

__all__ = (
    "AslDefinitionError",
    "AslHost",
    "ExpressionBudget",
    "ExpressionBudgetError",
    "LocalHost",
    "ResourceError",
    "StateMachine",
    "StatesError",
    "call_resource",
    "execute",
    "prepare_redrive",
)
