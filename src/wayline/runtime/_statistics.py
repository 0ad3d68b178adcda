"""`RuntimeStatistics`: a runtime's live figures at one moment (``rt.statistics()``)."""

from __future__ import annotations

import msgspec


class RuntimeStatistics(msgspec.Struct, frozen=True, gc=False):
    """What one runtime holds in memory right now (as trio's ``current_statistics()``).

    Attributes:
        live_runs: runs whose actor is in memory (running or waiting).
        waiting_runs: those of them that only wait (on timers, signals or callbacks), with
            everything they wait for recorded: the ones that may leave memory.
        mailbox_depth: messages queued in the mailboxes of those runs, in total.
        mailbox_depth_max: the deepest of those mailboxes.
        passivated: runs this runtime took out of memory while they wait (or found so when it
            opened) and has not reloaded.
    """

    live_runs: int = 0
    waiting_runs: int = 0
    mailbox_depth: int = 0
    mailbox_depth_max: int = 0
    passivated: int = 0
