-- Catalog context (data-model.md §3.1, §3.2). Idempotent.
CREATE TABLE IF NOT EXISTS noetl.resource (
    name VARCHAR PRIMARY KEY,
    meta JSONB
);
INSERT INTO noetl.resource (name, meta) VALUES
    ('playbook', '{"executable": true}'),
    ('credential', '{"executable": false}'),
    ('mcp', '{"executable": false}'),
    ('agent', '{"executable": true}'),
    ('memory', '{"executable": false}')
ON CONFLICT (name) DO NOTHING;

CREATE TABLE IF NOT EXISTS noetl.catalog (
    catalog_id BIGINT PRIMARY KEY,
    path TEXT NOT NULL,
    version SMALLINT NOT NULL,
    kind VARCHAR NOT NULL REFERENCES noetl.resource(name),
    content TEXT,
    layout JSONB,
    payload JSONB,
    meta JSONB,
    created_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    credential_id INTEGER,
    archived_at TIMESTAMPTZ,
    UNIQUE (path, version)
);
CREATE INDEX IF NOT EXISTS idx_catalog_path_version_live
    ON noetl.catalog (path, version DESC) WHERE archived_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_catalog_created_at ON noetl.catalog (created_at DESC);
