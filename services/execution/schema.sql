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
