-- Secrets wallet context (data-model.md §3.10-3.12, §9). Idempotent.
-- `data_encrypted` holds the v1 envelope of §9.2 only, never plaintext.
CREATE TABLE IF NOT EXISTS noetl.credential (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    data_encrypted TEXT NOT NULL,
    schema JSONB,
    meta JSONB,
    tags TEXT[],
    description TEXT,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_credential_type ON noetl.credential (type);

-- No foreign key to noetl.catalog: contexts own their tables (docs/decisions.md).
CREATE TABLE IF NOT EXISTS noetl.keychain (
    cache_key TEXT PRIMARY KEY,
    keychain_name TEXT NOT NULL,
    catalog_id BIGINT NOT NULL,
    credential_type TEXT NOT NULL,
    cache_type TEXT NOT NULL CHECK (cache_type IN ('secret', 'token')),
    scope_type TEXT NOT NULL CHECK (scope_type IN ('local', 'global', 'shared')),
    execution_id BIGINT,
    parent_execution_id BIGINT,
    data_encrypted TEXT NOT NULL,
    schema JSONB,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ DEFAULT now(),
    accessed_at TIMESTAMPTZ DEFAULT now(),
    access_count INT DEFAULT 0,
    auto_renew BOOLEAN DEFAULT false,
    renew_config JSONB
);
CREATE INDEX IF NOT EXISTS idx_keychain_execution ON noetl.keychain (execution_id) WHERE execution_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_keychain_parent_execution
    ON noetl.keychain (parent_execution_id) WHERE parent_execution_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_keychain_expires_at ON noetl.keychain (expires_at);
CREATE INDEX IF NOT EXISTS idx_keychain_cache_scope ON noetl.keychain (cache_type, scope_type);
CREATE INDEX IF NOT EXISTS idx_keychain_name ON noetl.keychain (keychain_name);
CREATE INDEX IF NOT EXISTS idx_keychain_catalog ON noetl.keychain (catalog_id);
CREATE INDEX IF NOT EXISTS idx_keychain_name_catalog ON noetl.keychain (keychain_name, catalog_id);

-- Append-only: the service only ever inserts here.
CREATE TABLE IF NOT EXISTS noetl.secret_audit (
    audit_id BIGINT PRIMARY KEY,
    occurred_at TIMESTAMPTZ DEFAULT now(),
    credential TEXT NOT NULL,
    operation TEXT NOT NULL,
    outcome TEXT NOT NULL,
    worker_id TEXT,
    execution_id BIGINT,
    parent_execution_id BIGINT,
    server_region TEXT,
    broker_region TEXT,
    kek_version TEXT,
    notes TEXT
);
CREATE INDEX IF NOT EXISTS idx_secret_audit_credential ON noetl.secret_audit (credential, occurred_at DESC);
CREATE INDEX IF NOT EXISTS idx_secret_audit_execution
    ON noetl.secret_audit (execution_id) WHERE execution_id IS NOT NULL;
