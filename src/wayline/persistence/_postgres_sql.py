"""The SQL of the PostgreSQL store, in one place.

The group commit is one statement: a batch of any size is one round trip and, run outside an
explicit transaction, one transaction. Data-modifying CTEs all see the snapshot taken when the
statement starts, which the statement relies on in three places (each commented below).
"""

from __future__ import annotations

from ._records import ACCEPTING

_UNFINISHED = "(" + ", ".join(f"'{s.value}'" for s in ACCEPTING) + ")"  # QUEUED too: see ACCEPTING

#: Serializes inbox inserts across processes (taken only by batches that append messages):
#: with it a message's seq is drawn and committed in order, so a reader that has seen seq N
#: never finds a smaller one committed later (`inbox_since` relies on it; SQLite's single
#: writer gives the same order by construction).
INBOX_LOCK = 0x5761_796C_696E_6502
#: Serializes exclusive worker registrations (two starting together cannot both win).
REGISTER_LOCK = 0x5761_796C_696E_6503

# Parameters: $1 writer id, $2 batch number, $3 owning worker id (NULL: none);
# creates $4-$10; checkpoints $11-$17 (fence NULL: not fenced); history $18-$20;
# consumed inbox seqs $21; finished runs $22; inbox appends $23-$24; the ``meta`` of the
# creates $25 and of the checkpoints $26 (the metadata index's source, see `_search`); new
# blobs $27-$28 and a run's new references to blobs $29-$30 (see `_blobs`).
BATCH = f"""
WITH
c_in AS (
    SELECT * FROM unnest($4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[], $9::bytea[], $10::bytea[],
                         $25::jsonb[])
        AS t(run_id, workflow, status, created_at, wake_at, snapshot, events, meta)),
created AS (
    INSERT INTO wayline.runs (run_id, workflow, status, created_at, wake_at, snapshot, meta, owner, fence)
    SELECT run_id, workflow, status, created_at, wake_at, snapshot, meta,
           $3::text, CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END  -- a worker owns the runs it creates
    FROM c_in
    ON CONFLICT (run_id) DO NOTHING
    RETURNING run_id, status),
c_hist AS (
    INSERT INTO wayline.history (run_id, seq, events)
    SELECT c.run_id, 0, c.events FROM c_in c
    WHERE c.events IS NOT NULL AND c.run_id IN (SELECT run_id FROM created)),
k_in AS (
    SELECT * FROM unnest($11::text[], $12::text[], $13::text[], $14::float8[], $15::float8[], $16::bytea[],
                         $17::int8[], $26::jsonb[])
        AS t(run_id, workflow, status, created_at, wake_at, snapshot, fence, meta)),
-- A registered worker commits only while its registration stands: a worker whose lease
-- expired was deleted by the next claim or registration, which waits for this share lock, so
-- a commit either lands before that worker's runs change hands or is refused.
alive AS (SELECT 1 AS one FROM wayline.workers WHERE id = $3::text FOR KEY SHARE),
k_free AS (
    INSERT INTO wayline.runs (run_id, workflow, status, created_at, wake_at, snapshot, meta)
    SELECT run_id, workflow, status, created_at, wake_at, snapshot, meta FROM k_in
    WHERE fence IS NULL AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM alive))
    ON CONFLICT (run_id) DO UPDATE
        SET status = excluded.status, wake_at = excluded.wake_at, snapshot = excluded.snapshot, meta = excluded.meta
    RETURNING run_id),
-- The fencing check: the row is updated only while this worker still owns the run with the
-- counter it claimed. A concurrent claim that bumped the counter makes PostgreSQL re-check
-- this condition on the new row version (READ COMMITTED), so a stale worker cannot slip in.
k_fenced AS (
    UPDATE wayline.runs r SET status = k.status, wake_at = k.wake_at, snapshot = k.snapshot, meta = k.meta
    FROM k_in k
    WHERE k.fence IS NOT NULL AND r.run_id = k.run_id AND r.owner = $3::text AND r.fence = k.fence
      AND EXISTS (SELECT 1 FROM alive)
    RETURNING r.run_id),
ok AS (SELECT run_id FROM k_free UNION ALL SELECT run_id FROM k_fenced),
k_hist AS (
    INSERT INTO wayline.history (run_id, seq, events)
    SELECT h.run_id, h.seq, h.events FROM unnest($18::text[], $19::int4[], $20::bytea[]) AS h(run_id, seq, events)
    WHERE h.run_id IN (SELECT run_id FROM ok)
    -- over a row of an earlier segment of a run continued as new (see decode_history)
    ON CONFLICT (run_id, seq) DO UPDATE SET events = excluded.events),
gone AS (
    DELETE FROM wayline.inbox i
    WHERE i.run_id IN (SELECT run_id FROM ok) AND (i.seq = ANY($21::int8[]) OR i.run_id = ANY($22::text[]))),
inbox_lock AS (SELECT pg_advisory_xact_lock({INBOX_LOCK}) WHERE cardinality($23::text[]) > 0),
a_in AS (SELECT * FROM unnest($23::text[], $24::bytea[]) WITH ORDINALITY AS a(run_id, message, idx)),
-- The snapshot sees each run as it was before this statement, so a run created or finished by
-- this same batch is looked up in `created` and `ok` instead: a message is stored for a run
-- this batch creates, and never for one this batch finishes (its leftovers are deleted above,
-- from the same snapshot, which would not see this insert).
app AS (
    INSERT INTO wayline.inbox (run_id, message)
    SELECT a.run_id, a.message FROM a_in a
    WHERE (SELECT count(*) FROM inbox_lock) >= 0
      AND (EXISTS (SELECT 1 FROM wayline.runs r WHERE r.run_id = a.run_id AND r.status IN {_UNFINISHED})
           OR a.run_id IN (SELECT run_id FROM created WHERE status IN {_UNFINISHED}))
      AND a.run_id NOT IN (SELECT run_id FROM ok WHERE run_id = ANY($22::text[]))
    ORDER BY a.idx
    RETURNING seq, run_id),
-- Content-addressed: a blob stored before (by any run, any worker) is the same value.
blob_ins AS (
    INSERT INTO wayline.blobs (digest, size, data)
    SELECT d, length(b), b FROM unnest($27::text[], $28::bytea[]) AS t(d, b)
    ON CONFLICT DO NOTHING),
ref_ins AS (
    INSERT INTO wayline.run_blobs (run_id, digest)
    SELECT r, d FROM unnest($29::text[], $30::text[]) AS t(r, d)
    ON CONFLICT DO NOTHING),
note_inbox AS (SELECT pg_notify('wayline_inbox', run_id) FROM app),
note_runs AS (SELECT pg_notify('wayline_runs', count(*)::text) FROM created HAVING count(*) > 0),
-- The marker that makes a retry safe: committed with the batch, read back when the
-- acknowledgement of a batch was lost (see _postgres_commit).
mark AS (
    INSERT INTO wayline.batches (writer, n, created, ok, app_runs, app_seqs)
    SELECT $1::text, $2::bigint, ARRAY(SELECT run_id FROM created), ARRAY(SELECT run_id FROM ok),
           ARRAY(SELECT run_id FROM app ORDER BY seq), ARRAY(SELECT seq FROM app ORDER BY seq)),
prune AS (DELETE FROM wayline.batches WHERE writer = $1::text AND n < $2::bigint)
SELECT ARRAY(SELECT run_id FROM created) AS created,
       ARRAY(SELECT run_id FROM ok) AS ok,
       ARRAY(SELECT run_id FROM app ORDER BY seq) AS app_runs,
       ARRAY(SELECT seq FROM app ORDER BY seq) AS app_seqs,
       -- the snapshot again: only runs that existed before this batch
       ARRAY(SELECT r.run_id FROM wayline.runs r WHERE r.run_id = ANY($4::text[]) ORDER BY r.run_id) AS ex_ids,
       ARRAY(SELECT r.snapshot FROM wayline.runs r WHERE r.run_id = ANY($4::text[]) ORDER BY r.run_id) AS ex_snaps,
       (SELECT count(*) FROM note_inbox) + (SELECT count(*) FROM note_runs) AS notes
"""

#: A batch's marker, if it committed.
BATCH_MARKER = "SELECT created, ok, app_runs, app_seqs FROM wayline.batches WHERE writer = $1 AND n = $2"
#: Current state of runs a batch touched, to answer its callers after a lost acknowledgement.
BATCH_RUNS = "SELECT run_id, snapshot FROM wayline.runs WHERE run_id = ANY($1::text[])"
#: Markers of writers long gone (a writer deletes its own as it goes; a crashed one leaves one).
PRUNE_MARKERS = "DELETE FROM wayline.batches WHERE at < now() - interval '1 day'"

GET_RUN = "SELECT snapshot FROM wayline.runs WHERE run_id = $1"
# One statement, so one snapshot: rows and tail cannot straddle a checkpoint.
GET_HISTORY = (
    "SELECT 0 AS k, seq, events FROM wayline.history WHERE run_id = $1 "
    "UNION ALL SELECT 1, 0, snapshot FROM wayline.runs WHERE run_id = $1 ORDER BY 1, 2"
)
GET_INBOX = "SELECT seq, message FROM wayline.inbox WHERE run_id = $1 ORDER BY seq"
INBOX_SINCE = "SELECT seq, run_id, message FROM wayline.inbox WHERE seq > $1 ORDER BY seq LIMIT $2"
DUE_RUNS = (
    "SELECT run_id, wake_at FROM wayline.runs WHERE wake_at IS NOT NULL AND wake_at <= $1 AND status = $2 "
    "ORDER BY wake_at LIMIT $3"
)
NEXT_WAKE = "SELECT min(wake_at) FROM wayline.runs WHERE wake_at IS NOT NULL AND wake_at > $1 AND status = $2"
COUNT_RUNS = "SELECT count(*) FROM wayline.runs WHERE status = ANY($1::text[])"

# --- workers and leases ------------------------------------------------------------------

# A registration checks for other live workers. Live means a lease not expired and at least
# one session open under the worker's tag (every connection of a store carries it in its
# application_name): a worker killed with SIGKILL loses its sessions at once, so the next
# process need not wait for its lease. A paused worker keeps its sessions and its lease.
_HAS_SESSIONS = (
    "EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name LIKE 'wayline % ' || w.tag AND w.tag <> '')"
)
LIVE_WORKERS = (
    "SELECT id, host, pid, extract(epoch FROM lease_until - now()), exclusive FROM wayline.workers w "
    f"WHERE id <> $1 AND lease_until >= now() AND {_HAS_SESSIONS} ORDER BY started_at"
)
DELETE_WORKER = "DELETE FROM wayline.workers WHERE id = $1"
DELETE_DEAD_AT_REGISTER = (
    f"DELETE FROM wayline.workers w WHERE id <> $1 AND NOT (lease_until >= now() AND {_HAS_SESSIONS})"
)
REGISTER = """
INSERT INTO wayline.workers (id, host, pid, exclusive, tag, lease_until, listens)
VALUES ($1, $2, $3, $5, $6, now() + make_interval(secs => $4), $7::text::jsonb)
ON CONFLICT (id) DO UPDATE
    SET host = excluded.host, pid = excluded.pid, exclusive = excluded.exclusive, tag = excluded.tag,
        started_at = now(), heartbeat_at = now(), lease_until = excluded.lease_until, listens = excluded.listens
RETURNING extract(epoch FROM started_at), extract(epoch FROM heartbeat_at), extract(epoch FROM lease_until)
"""
#: A worker registered again under an id it had before gives up what that incarnation owned:
#: the runs become claimable at once (and the next claim bumps their fence).
RELEASE_ALL = "UPDATE wayline.runs SET owner = NULL WHERE owner = $1"
RENEW = (
    "UPDATE wayline.workers SET heartbeat_at = now(), lease_until = now() + make_interval(secs => $2) "
    "WHERE id = $1 RETURNING 1"
)
UNREGISTER = (
    "WITH freed AS (UPDATE wayline.runs SET owner = NULL WHERE owner = $1) DELETE FROM wayline.workers WHERE id = $1"
)
# Claims first remove workers whose lease has expired (`DELETE_EXPIRED`, a statement of its own
# in the claim's transaction). The DELETE locks a worker's row, so a renewal that commits first
# is seen (and the worker kept); one that comes after finds its row gone and knows it lost
# everything. Runs owned by such a worker are then orphans: the claim's own statement sees the
# delete. (As a CTE of the claim, the delete is re-run when the claim re-checks a row changed
# under it, and PostgreSQL refuses: "ModifyTable should not be called during EvalPlanQual".)
# $4: the workflows the claiming worker has (NULL: any): a run of another workflow is left to
# a worker that has it (claimed and given back at every sweep, it churned the run's fence).
CLAIM_RUNS = """
WITH cand AS (
    SELECT r.run_id FROM wayline.runs r
    WHERE r.status = ANY($2::text[])
      AND ($4::text[] IS NULL OR r.workflow = ANY($4::text[]))
      AND (r.owner IS NULL OR NOT EXISTS (SELECT 1 FROM wayline.workers w WHERE w.id = r.owner))
    ORDER BY r.created_at, r.run_id
    LIMIT $3
    FOR UPDATE OF r SKIP LOCKED)
UPDATE wayline.runs r SET owner = $1, fence = r.fence + 1 FROM cand WHERE r.run_id = cand.run_id
RETURNING r.run_id, r.fence
"""
UNCLAIMED_WORKFLOWS = """
SELECT DISTINCT r.workflow FROM wayline.runs r
WHERE r.status = ANY($1::text[]) AND r.workflow <> ALL($2::text[])
  AND (r.owner IS NULL OR NOT EXISTS (SELECT 1 FROM wayline.workers w WHERE w.id = r.owner))
ORDER BY r.workflow
"""
# One run, in two statements of one transaction: the expired workers are deleted first, then
# the run is taken if its owner is gone. As one statement (the DELETE in a CTE), a claim that
# finds the row updated by a concurrent claim re-checks it (EvalPlanQual) and PostgreSQL
# refuses ("ModifyTable should not be called during EvalPlanQual"); CLAIM_RUNS locks its rows
# with SKIP LOCKED first, so it never re-checks one.
DELETE_EXPIRED = "DELETE FROM wayline.workers WHERE lease_until < now()"
# A run this worker owns already keeps its fence: two claims of one run at once by one worker
# (a message delivered by its sender and by the poller) must both get the lease it commits with.
CLAIM_RUN = f"""
UPDATE wayline.runs r SET owner = $1, fence = CASE WHEN r.owner = $1 THEN r.fence ELSE r.fence + 1 END
WHERE r.run_id = $2 AND r.status IN {_UNFINISHED}
  AND (r.owner IS NULL OR r.owner = $1 OR NOT EXISTS (SELECT 1 FROM wayline.workers w WHERE w.id = r.owner))
RETURNING r.fence
"""
RELEASE = "UPDATE wayline.runs SET owner = NULL WHERE owner = $1 AND run_id = ANY($2::text[])"
# A run keeps its owner column once it has finished (nothing more is committed for it): only
# unfinished runs count as owned.
LIST_WORKERS = f"""
SELECT w.id, w.host, w.pid, extract(epoch FROM w.started_at), extract(epoch FROM w.heartbeat_at),
       extract(epoch FROM w.lease_until),
       (SELECT count(*) FROM wayline.runs r WHERE r.owner = w.id AND r.status IN {_UNFINISHED})
FROM wayline.workers w ORDER BY w.started_at, w.id
"""
#: The owner of each of the given runs that is unfinished and owned (its lease may have lapsed:
#: the next claim takes it; `LIST_WORKERS` shows whose lease did).
RUN_OWNERS = (
    f"SELECT run_id, owner FROM wayline.runs WHERE run_id = ANY($1::text[]) AND owner IS NOT NULL "
    f"AND status IN {_UNFINISHED}"
)
