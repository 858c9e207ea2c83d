-- Execution context: status projection and command queue (data-model.md §3.4, §3.5).
CREATE TABLE IF NOT EXISTS noetl.execution (
    execution_id BIGINT PRIMARY KEY,
    catalog_id BIGINT NOT NULL,
    parent_execution_id BIGINT,
    status VARCHAR NOT NULL,
    last_event_type VARCHAR,
    last_node_name VARCHAR,
    last_event_id BIGINT,
    start_time TIMESTAMPTZ,
    end_time TIMESTAMPTZ,
    error TEXT,
    state JSONB,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_execution_start
    ON noetl.execution ((COALESCE(start_time, created_at)) DESC NULLS LAST, execution_id DESC);
CREATE INDEX IF NOT EXISTS idx_execution_open ON noetl.execution (status) WHERE status = 'RUNNING';

CREATE TABLE IF NOT EXISTS noetl.command (
    command_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    execution_id BIGINT NOT NULL,
    catalog_id BIGINT NOT NULL,
    parent_execution_id BIGINT,
    parent_command_id BIGINT,
    step_name TEXT NOT NULL,
    tool_kind TEXT,
    status TEXT NOT NULL DEFAULT 'PENDING',
    worker_id TEXT,
    claimed_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    lease_until TIMESTAMPTZ,
    heartbeat_at TIMESTAMPTZ,
    attempt INT DEFAULT 1,
    context JSONB,
    context_key TEXT,
    loop_event_id TEXT,
    iter_index INT,
    meta JSONB,
    result JSONB,
    error TEXT,
    latest_event_id BIGINT,
    prev_event_id BIGINT,
    stage_id BIGINT,
    frame_id BIGINT,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now(),
    PRIMARY KEY (execution_id, command_id)
) PARTITION BY HASH (execution_id);
DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS noetl.command_p%s PARTITION OF noetl.command
             FOR VALUES WITH (MODULUS 16, REMAINDER %s)', lpad(i::text, 2, '0'), i);
    END LOOP;
END $$;
CREATE INDEX IF NOT EXISTS idx_command_event_id ON noetl.command (event_id);
CREATE INDEX IF NOT EXISTS idx_command_command_id ON noetl.command (command_id);
CREATE INDEX IF NOT EXISTS idx_command_execution ON noetl.command (execution_id);
CREATE INDEX IF NOT EXISTS idx_command_execution_step ON noetl.command (execution_id, step_name);
CREATE INDEX IF NOT EXISTS idx_command_status_open ON noetl.command (status) WHERE status IN ('PENDING', 'CLAIMED');
CREATE INDEX IF NOT EXISTS idx_command_execution_open ON noetl.command (execution_id, status)
    WHERE status IN ('PENDING', 'CLAIMED', 'RUNNING');
CREATE INDEX IF NOT EXISTS idx_command_lease ON noetl.command (lease_until) WHERE status IN ('CLAIMED', 'RUNNING');
CREATE INDEX IF NOT EXISTS idx_command_worker_claimed ON noetl.command (worker_id, updated_at) WHERE status = 'CLAIMED';

-- Worker pools and other runtimes (data-model.md §3.13). Cluster-wide: shard 0 serves PoolService.
CREATE TABLE IF NOT EXISTS noetl.runtime (
    runtime_id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('worker_pool', 'server_api', 'broker', 'scheduler', 'monitor')),
    uri TEXT,
    status TEXT NOT NULL,
    labels JSONB,
    capabilities JSONB,
    capacity INT,
    runtime JSONB,
    heartbeat TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now(),
    UNIQUE (kind, name)
);
CREATE INDEX IF NOT EXISTS idx_runtime_kind ON noetl.runtime (kind);
CREATE INDEX IF NOT EXISTS idx_runtime_status ON noetl.runtime (status);

-- Execution-scoped variables (data-model.md §3.7); upserted on (execution_id, var_name).
CREATE TABLE IF NOT EXISTS noetl.transient (
    execution_id BIGINT NOT NULL,
    var_name TEXT NOT NULL,
    var_type TEXT NOT NULL CHECK (var_type IN ('user_defined', 'step_result', 'computed', 'iterator_state')),
    var_value JSONB NOT NULL,
    source_step TEXT,
    created_at TIMESTAMPTZ DEFAULT now(),
    accessed_at TIMESTAMPTZ DEFAULT now(),
    access_count INT DEFAULT 0,
    expires_at TIMESTAMPTZ,
    scope TEXT DEFAULT 'execution' CHECK (scope IN ('step', 'execution', 'workflow', 'permanent')),
    PRIMARY KEY (execution_id, var_name)
);
CREATE INDEX IF NOT EXISTS idx_transient_var_type ON noetl.transient (var_type);
CREATE INDEX IF NOT EXISTS idx_transient_source_step ON noetl.transient (source_step);
CREATE INDEX IF NOT EXISTS idx_transient_execution ON noetl.transient (execution_id);
CREATE INDEX IF NOT EXISTS idx_transient_expires ON noetl.transient (expires_at) WHERE expires_at IS NOT NULL;

-- Result store (data-model.md §3.8): values kept outside the event log, per shard.
CREATE TABLE IF NOT EXISTS noetl.result_store (
    result_id BIGINT PRIMARY KEY,
    execution_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    source_step TEXT,
    data JSONB NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT DEFAULT 'application/json',
    correlation JSONB,
    extracted JSONB,
    created_at TIMESTAMPTZ DEFAULT now(),
    expires_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_result_store_execution_name ON noetl.result_store (execution_id, name);
CREATE INDEX IF NOT EXISTS idx_result_store_created ON noetl.result_store (created_at);
CREATE INDEX IF NOT EXISTS idx_result_store_expires ON noetl.result_store (expires_at) WHERE expires_at IS NOT NULL;

-- The claim lock and the row as it is once the lock is held, in one round trip
-- (services/execution/commands/store.py, `lock_command`). A statement reads with the snapshot it
-- started with, taken before its lock was granted, and could see the row as it was before the
-- previous holder's claim committed; a VOLATILE function's statements each take a fresh one.
-- One row: `locked` false when another claim holds the lock; `found` NULL when there is no row.
CREATE OR REPLACE FUNCTION noetl.claim_lock(target_execution BIGINT, target_command BIGINT)
RETURNS TABLE (locked BOOLEAN, found noetl.command) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    fresh noetl.command;
BEGIN
    IF NOT pg_try_advisory_xact_lock(target_command) THEN
        RETURN QUERY SELECT false, NULL::noetl.command;
        RETURN;
    END IF;
    SELECT c.* INTO fresh FROM noetl.command c
    WHERE c.execution_id = target_execution AND c.command_id = target_command;
    RETURN QUERY SELECT true, CASE WHEN FOUND THEN fresh END;
END
$$;
