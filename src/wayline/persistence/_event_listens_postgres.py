"""Which worker may mark an event dispatched, when the workers of one PostgreSQL database do
not all have the same workflows (migration 8).

Each worker's registration row says which of its workflows listen to which event names
(``wayline.workers.listens``: ``{"order/created": ["fulfil", "notify"], ...}``, triggers and
``cancel_on`` alike). A worker that has dispatched an event (started its runs, cancelled, woken
the waiters) marks it dispatched only if every workflow that a live worker listens to that
name with is one of its own, or has been dispatched already by another worker: those leave a
row in ``wayline.event_marks`` (event, workflow) when they could not mark it themselves. So
a cluster of identical workers, and any event that only waits, are marked by whoever
dispatches them first, in one statement, as before; an event that two workers with different
workflows must both see stays undispatched (read again by the beats) until the last of them
has dispatched its part.

A worker that registers later (a rolling deploy) starts the runs of the events still
undispatched when it comes up; an event marked dispatched before it registered does not
start its new workflows.
"""

from __future__ import annotations

#: Migration 7 of the PostgreSQL schema.
MIGRATION = (
    "ALTER TABLE wayline.workers ADD COLUMN listens jsonb NOT NULL DEFAULT '{}'::jsonb",
    """CREATE TABLE wayline.event_marks (
        seq      bigint NOT NULL,
        workflow text NOT NULL,
        PRIMARY KEY (seq, workflow)
    )""",
)

# $1: the events this worker has dispatched; $2: its listens (JSON text). `done`: those that no
# live worker listens to with a workflow this worker lacks and that nobody marked. The others
# get this worker's marks. A statement sees the database as it was when it began (its own
# marks included: they come from $2), so two workers marking their parts at the same moment
# may both leave the event undispatched; the next beat's mark finds both parts and marks it.
# Marks of dispatched events go with them, and so do those below the oldest undispatched
# event (a mark written after another worker's statement had marked the event).
MARK = """
WITH ev AS (
    SELECT seq, name, COALESCE($2::text::jsonb -> name, '[]'::jsonb) AS mine
    FROM wayline.events WHERE seq = ANY($1::bigint[]) AND NOT dispatched
), done AS (
    SELECT ev.seq FROM ev WHERE NOT EXISTS (
        SELECT 1 FROM wayline.workers k
        CROSS JOIN LATERAL jsonb_array_elements_text(COALESCE(k.listens -> ev.name, '[]'::jsonb)) AS l(wf)
        WHERE k.lease_until >= now() AND NOT ev.mine ? l.wf
          AND NOT EXISTS (SELECT 1 FROM wayline.event_marks m WHERE m.seq = ev.seq AND m.workflow = l.wf)
    )
), noted AS (
    INSERT INTO wayline.event_marks (seq, workflow)
    SELECT ev.seq, w.wf FROM ev CROSS JOIN LATERAL jsonb_array_elements_text(ev.mine) AS w(wf)
    WHERE ev.seq NOT IN (SELECT seq FROM done)
    ON CONFLICT DO NOTHING
), gone AS (
    DELETE FROM wayline.event_marks m
    WHERE m.seq IN (SELECT seq FROM done)
       OR m.seq < (SELECT min(seq) FROM wayline.events WHERE NOT dispatched)
)
UPDATE wayline.events e SET dispatched = true FROM done WHERE e.seq = done.seq
"""
