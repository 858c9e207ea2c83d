-- Transactional outbox (data-model.md §3.6, §8). Rows are enqueued by the event service in the
-- same transaction as their event; every later state transition belongs to the outbox service.
-- Unique per (execution_id, event_id, subject): one event can carry both its stream mirror and
-- a command notification.
CREATE TABLE IF NOT EXISTS noetl.outbox (
    outbox_id BIGSERIAL PRIMARY KEY,
    execution_id BIGINT,
    event_id BIGINT NOT NULL,
    subject TEXT,
    payload JSONB NOT NULL,
    payload_bytes BYTEA,
    payload_codec TEXT NOT NULL DEFAULT 'json',
    status TEXT NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'IN_FLIGHT', 'PUBLISHED', 'FAILED', 'DEAD')),
    attempts INT NOT NULL DEFAULT 0,
    available_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    locked_at TIMESTAMPTZ,
    published_at TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now(),
    UNIQUE (execution_id, event_id, subject)
);
CREATE INDEX IF NOT EXISTS idx_outbox_ready ON noetl.outbox (status, available_at, outbox_id)
    WHERE status IN ('PENDING', 'FAILED');
-- The claim walks due rows in outbox_id order (store.py `_CLAIM`).
CREATE INDEX IF NOT EXISTS idx_outbox_claim ON noetl.outbox (outbox_id) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX IF NOT EXISTS idx_outbox_in_flight ON noetl.outbox (status, locked_at) WHERE status = 'IN_FLIGHT';
CREATE INDEX IF NOT EXISTS idx_outbox_execution_event ON noetl.outbox (execution_id, event_id);
CREATE INDEX IF NOT EXISTS idx_outbox_dead ON noetl.outbox (outbox_id) WHERE status = 'DEAD';
