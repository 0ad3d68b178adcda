"""A run: its pure state machine (`decide` on a `RunState`) and the actor that performs it.

From the bottom up: ``_tables`` (the shared empty table), ``_timers`` (a run's timers),
``_journal`` (typed journal entries), ``_messages`` and ``_effects`` (what the state machine
is told and what it asks), ``_state`` (the run's state), ``_callbacks``, ``_signals`` and
``_steps`` (its parts), ``_decide`` (the state machine), ``_restore`` (a state rebuilt from
the store), ``_code`` (stepping a workflow body), ``_replay`` (a body replayed with no effect
performed), ``_asl`` (the host a state machine runs on) and ``_actor`` (the mailbox loop that
performs the effects).
"""

from ._actor import RunActor as RunActor
from ._asl import DETACHED_KEY as DETACHED_KEY, PARENT_KEY as PARENT_KEY
from ._children import NOTIFY_KEY as NOTIFY_KEY, notifies_parent as notifies_parent
from ._decide import decide as decide
from ._messages import Inbound as Inbound
from ._replay import replay_body as replay_body
from ._restore import restore as restore
from ._state import RunState as RunState

__all__ = (
    "DETACHED_KEY",
    "NOTIFY_KEY",
    "PARENT_KEY",
    "Inbound",
    "RunActor",
    "RunState",
    "decide",
    "notifies_parent",
    "replay_body",
    "restore",
)
