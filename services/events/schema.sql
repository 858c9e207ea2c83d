-- Event log (data-model.md §3.3, §4). Append-only, RANGE partitioned by execution_id.
-- catalog_id carries no foreign key: the catalog lives in another context (and, sharded,
-- in another database); integrity is checked by the execution service at start.
CREATE TABLE IF NOT EXISTS noetl.event (
    execution_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    catalog_id BIGINT NOT NULL,
    parent_event_id BIGINT,
    parent_execution_id BIGINT,
    prev_event_id BIGINT,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    event_type VARCHAR,
    node_id VARCHAR,
    node_name VARCHAR,
    node_type VARCHAR,
    status VARCHAR,
    duration DOUBLE PRECISION,
    context JSONB,
    result JSONB,
    meta JSONB,
    error TEXT,
    worker_id VARCHAR,
    command_id BIGINT,
    current_index INTEGER,
    current_item TEXT,
    distributed_state JSONB,
    context_key TEXT,
    context_value JSONB,
    trace_component JSONB,
    stack_trace TEXT,
    stage_id BIGINT,
    frame_id BIGINT,
    tenant_id TEXT NOT NULL DEFAULT 'default',
    organization_id TEXT NOT NULL DEFAULT 'default',
    stream_id TEXT,
    stream_version BIGINT,
    aggregate_id TEXT,
    aggregate_type TEXT,
    schema_name TEXT,
    schema_version INT NOT NULL DEFAULT 1,
    event_time TIMESTAMPTZ NOT NULL DEFAULT now(),
    ingest_time TIMESTAMPTZ NOT NULL DEFAULT now(),
    producer TEXT,
    causation_id TEXT,
    correlation_id TEXT,
    idempotency_key TEXT,
    payload_ref TEXT,
    envelope_checksum TEXT,
    PRIMARY KEY (execution_id, event_id),
    CONSTRAINT chk_event_result_shape CHECK (
        result IS NULL OR (
            jsonb_typeof(result) = 'object'
            AND jsonb_typeof(result -> 'status') = 'string'
            AND (result - 'status' - 'context' - 'reference') = '{}'::jsonb
            AND (NOT result ? 'context' OR jsonb_typeof(result -> 'context') = 'object')
            AND (NOT result ? 'reference' OR jsonb_typeof(result -> 'reference') = 'object')
        )
    )
) PARTITION BY RANGE (execution_id);

CREATE TABLE IF NOT EXISTS noetl.event_pre_2026 PARTITION OF noetl.event
    FOR VALUES FROM (MINVALUE) TO (264905529753600000);
CREATE TABLE IF NOT EXISTS noetl.event_2026_q1 PARTITION OF noetl.event
    FOR VALUES FROM (264905529753600000) TO (297520437657600000);
CREATE TABLE IF NOT EXISTS noetl.event_2026_q2 PARTITION OF noetl.event
    FOR VALUES FROM (297520437657600000) TO (330497733427200000);
CREATE TABLE IF NOT EXISTS noetl.event_2026_q3 PARTITION OF noetl.event
    FOR VALUES FROM (330497733427200000) TO (363837417062400000);
CREATE TABLE IF NOT EXISTS noetl.event_2026_q4 PARTITION OF noetl.event
    FOR VALUES FROM (363837417062400000) TO (397177100697600000);
CREATE TABLE IF NOT EXISTS noetl.event_2027_q1 PARTITION OF noetl.event
    FOR VALUES FROM (397177100697600000) TO (429792008601600000);
CREATE TABLE IF NOT EXISTS noetl.event_2027_q2 PARTITION OF noetl.event
    FOR VALUES FROM (429792008601600000) TO (462769304371200000);
CREATE TABLE IF NOT EXISTS noetl.event_2027_q3 PARTITION OF noetl.event
    FOR VALUES FROM (462769304371200000) TO (496108988006400000);
CREATE TABLE IF NOT EXISTS noetl.event_2027_q4 PARTITION OF noetl.event
    FOR VALUES FROM (496108988006400000) TO (529448671641600000);
CREATE TABLE IF NOT EXISTS noetl.event_default PARTITION OF noetl.event DEFAULT;

-- (execution_id) alone is served by the primary key; a separate index made the planner scan a
-- whole execution's log for `execution_id = $1 AND event_id > $2` reads.
DROP INDEX IF EXISTS noetl.idx_event_execution_id;
CREATE INDEX IF NOT EXISTS idx_event_catalog_id ON noetl.event (catalog_id);
CREATE INDEX IF NOT EXISTS idx_event_type ON noetl.event (event_type);
CREATE INDEX IF NOT EXISTS idx_event_status ON noetl.event (status);
CREATE INDEX IF NOT EXISTS idx_event_created_at ON noetl.event (created_at);
CREATE INDEX IF NOT EXISTS idx_event_node_name ON noetl.event (node_name);
CREATE INDEX IF NOT EXISTS idx_event_parent_event_id ON noetl.event (parent_event_id);
CREATE INDEX IF NOT EXISTS idx_event_parent_execution_id ON noetl.event (parent_execution_id);
CREATE INDEX IF NOT EXISTS idx_event_event_id ON noetl.event (event_id);
CREATE INDEX IF NOT EXISTS idx_event_exec_event_desc ON noetl.event (execution_id, event_id DESC);
CREATE INDEX IF NOT EXISTS idx_event_exec_type_event ON noetl.event (execution_id, event_type, event_id DESC);
CREATE INDEX IF NOT EXISTS idx_event_worker_idem ON noetl.event (execution_id, event_type, node_name, command_id);
CREATE INDEX IF NOT EXISTS idx_event_prev ON noetl.event (execution_id, prev_event_id) WHERE prev_event_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_event_meta_idem ON noetl.event (execution_id, (meta->>'idempotency_key'))
    WHERE meta ? 'idempotency_key';
CREATE INDEX IF NOT EXISTS idx_event_idem_key ON noetl.event (execution_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_event_started ON noetl.event (event_id DESC)
    INCLUDE (execution_id, catalog_id, parent_execution_id, created_at)
    WHERE event_type = 'playbook.initialized';

CREATE OR REPLACE VIEW noetl.event_log AS SELECT * FROM noetl.event;

-- Worker event batches (http-api.md §5.2): one row per accepted POST /api/events/batch, written
-- in the transaction of its events, so a replay of its idempotency key never sees half a batch.
-- `state` moves from 'accepted' to 'completed' (or 'failed') once orchestration has run.
CREATE TABLE IF NOT EXISTS noetl.event_batch (
    request_id BIGINT PRIMARY KEY,
    execution_id BIGINT NOT NULL,
    idempotency_key TEXT,
    event_ids BIGINT[] NOT NULL,
    state VARCHAR NOT NULL DEFAULT 'accepted',
    commands_generated INTEGER,
    error TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    updated_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    CONSTRAINT chk_event_batch_state CHECK (state IN ('accepted', 'completed', 'failed'))
);
-- Project column: sha256 of what the batch asked (a replay of its key must ask the same).
ALTER TABLE noetl.event_batch ADD COLUMN IF NOT EXISTS request_digest TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS idx_event_batch_idem ON noetl.event_batch (execution_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- An append's look-ups in one round trip (services/events/store.py, `EventStore._lookup`).
-- It takes the executions' advisory locks first, in id order (concurrent appends never
-- deadlock); each look-up after that is a statement of its own in a VOLATILE function, so it
-- reads with a snapshot taken after the locks were granted and sees every event the previous
-- holder committed. Rows by `kind`: 0 the chain head (`catalog_id`, `parent_execution_id` of
-- its execution), 1 the first terminal event, 2 a given event id stored already, 3 the event
-- stored under an idempotency key (`label`), 4 a worker event's identity (`label` its type).
-- Look-ups go key by key through LATERAL so each one is an index probe under a generic plan
-- (tests/integration/test_event_plans.py): a plain join against unnest() lets the planner
-- hash-join the whole event table once it grows.
CREATE OR REPLACE FUNCTION noetl.append_lookup(
    executions BIGINT[],
    open_checks BIGINT[],
    terminal_types TEXT[],
    id_executions BIGINT[],
    id_events BIGINT[],
    key_executions BIGINT[],
    key_names TEXT[],
    worker_executions BIGINT[],
    worker_types TEXT[],
    worker_nodes TEXT[],
    worker_commands BIGINT[]
) RETURNS TABLE (
    kind SMALLINT,
    execution_id BIGINT,
    event_id BIGINT,
    catalog_id BIGINT,
    parent_execution_id BIGINT,
    label TEXT,
    node_name TEXT,
    command_id BIGINT
) LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    locked BIGINT;
BEGIN
    FOR locked IN SELECT DISTINCT x FROM unnest(executions) AS x ORDER BY x LOOP
        PERFORM pg_advisory_xact_lock(locked);
    END LOOP;
    RETURN QUERY
        SELECT 0::smallint, x.id, h.event_id, h.catalog_id, h.parent_execution_id, NULL::text, NULL::text, NULL::bigint
        FROM unnest(executions) AS x(id)
        CROSS JOIN LATERAL (
            SELECT e.event_id, e.catalog_id, e.parent_execution_id FROM noetl.event e
            WHERE e.execution_id = x.id ORDER BY e.event_id DESC LIMIT 1) h;
    -- One probe per (execution, terminal type): a single probe filtering on several types walks
    -- the execution's whole log when it has no terminal event yet.
    IF cardinality(open_checks) > 0 THEN
        RETURN QUERY
            SELECT 1::smallint, x.id, min(t.event_id), NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::bigint
            FROM unnest(open_checks) AS x(id)
            CROSS JOIN unnest(terminal_types) AS ty(name)
            CROSS JOIN LATERAL (
                SELECT e.event_id FROM noetl.event e
                WHERE e.execution_id = x.id AND e.event_type = ty.name ORDER BY e.event_id LIMIT 1) t
            GROUP BY x.id;
    END IF;
    -- An event id is asked as "the first id at or after this one" so that only an index ordered
    -- by (execution_id, event_id) can answer it: an equality alone ties, on an empty partition,
    -- with every index led by execution_id, and a plan cached there would walk the execution.
    IF cardinality(id_events) > 0 THEN
        RETURN QUERY
            SELECT 2::smallint, k.execution_id, k.event_id, NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::bigint
            FROM unnest(id_executions, id_events) AS k(execution_id, event_id)
            CROSS JOIN LATERAL (
                SELECT e.event_id FROM noetl.event e
                WHERE e.execution_id = k.execution_id AND e.event_id >= k.event_id
                ORDER BY e.event_id LIMIT 1) f
            WHERE f.event_id = k.event_id;
    END IF;
    -- A key or a worker event's identity is stored at most once (the lock guarantees it), so no
    -- ORDER BY: with one, the planner walks the (execution_id, event_type, event_id) index
    -- through every event of that type instead.
    IF cardinality(key_names) > 0 THEN
        RETURN QUERY
            SELECT 3::smallint, k.execution_id, f.event_id, NULL::bigint, NULL::bigint, k.idempotency_key, NULL::text, NULL::bigint
            FROM unnest(key_executions, key_names) AS k(execution_id, idempotency_key)
            CROSS JOIN LATERAL (
                SELECT e.event_id FROM noetl.event e
                WHERE e.execution_id = k.execution_id AND e.idempotency_key = k.idempotency_key
                LIMIT 1) f;
    END IF;
    IF cardinality(worker_commands) > 0 THEN
        RETURN QUERY
            SELECT 4::smallint, k.execution_id, f.event_id, NULL::bigint, NULL::bigint, k.event_type, k.node_name, k.command_id
            FROM unnest(worker_executions, worker_types, worker_nodes, worker_commands)
                AS k(execution_id, event_type, node_name, command_id)
            CROSS JOIN LATERAL (
                SELECT e.event_id FROM noetl.event e
                WHERE e.execution_id = k.execution_id AND e.event_type = k.event_type
                  AND e.node_name = k.node_name AND e.command_id = k.command_id
                LIMIT 1) f;
    END IF;
END
$$;
