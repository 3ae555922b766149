"""The schema, as an append-only list of migrations.

``PRAGMA user_version`` holds how many have been applied. A database written by an
older fogd is brought forward on open; one written by a newer fogd is refused.
Never edit a migration that has shipped: append a new one.
"""

MIGRATIONS: list[str] = [
    # 1: nodes and readings.
    """
    CREATE TABLE nodes (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        role        TEXT NOT NULL,
        provisioner TEXT NOT NULL DEFAULT 'external',  -- 'external' = registered by its first reading
        created_ms  INTEGER NOT NULL,
        runtime     TEXT NOT NULL DEFAULT '{}'          -- provisioner facts (container id, image, ...), JSON
    );
    -- Append-only: rowid order is arrival order, so inserts touch the end of the table.
    CREATE TABLE readings (
        id          INTEGER PRIMARY KEY,
        node_id     INTEGER NOT NULL REFERENCES nodes(id),
        ts          INTEGER NOT NULL,       -- epoch ms, UTC
        seq         INTEGER,                -- the agent's per-node sequence number
        temperature REAL,
        humidity    REAL,
        power       REAL,
        comfort     REAL,
        alert       INTEGER NOT NULL,       -- 0 normal, 1 warning, 2 critical
        source      TEXT NOT NULL,
        extra       TEXT                    -- JSON object of extra metrics, NULL when empty
    );
    -- "one node over a time range" and "latest reading per node".
    CREATE INDEX readings_node_ts ON readings(node_id, ts);
    -- de-duplication of agent retries.
    CREATE UNIQUE INDEX readings_node_seq ON readings(node_id, seq) WHERE seq IS NOT NULL;
    """,
    # 2: events (analysis decisions, operator actions).
    """
    CREATE TABLE events (
        id        INTEGER PRIMARY KEY,
        ts        INTEGER NOT NULL,          -- epoch ms, UTC
        node_id   INTEGER REFERENCES nodes(id),
        kind      TEXT NOT NULL,             -- e.g. 'finding', 'alert_opened', 'transfer'
        rule      TEXT,
        severity  TEXT,
        message   TEXT NOT NULL,
        evidence  TEXT NOT NULL DEFAULT '{}' -- JSON
    );
    CREATE INDEX events_ts ON events(ts);
    CREATE INDEX events_node_ts ON events(node_id, ts);
    """,
    # 3: alerts with a lifecycle (open -> acknowledged -> cleared).
    """
    CREATE TABLE alerts (
        id            INTEGER PRIMARY KEY,
        node_id       INTEGER NOT NULL REFERENCES nodes(id),
        rule          TEXT NOT NULL,
        severity      TEXT NOT NULL,            -- warning | critical (the worst seen while open)
        state         TEXT NOT NULL,            -- open | acknowledged | cleared
        message       TEXT NOT NULL,
        evidence      TEXT NOT NULL DEFAULT '{}',
        opened_ms     INTEGER NOT NULL,
        updated_ms    INTEGER NOT NULL,
        cleared_ms    INTEGER,
        acked_ms      INTEGER,
        findings      INTEGER NOT NULL DEFAULT 1,   -- evaluations that found it
        normal_streak INTEGER NOT NULL DEFAULT 0    -- consecutive evaluations without it
    );
    -- at most one live (not cleared) alert per node and rule
    CREATE UNIQUE INDEX alerts_live ON alerts(node_id, rule) WHERE state != 'cleared';
    CREATE INDEX alerts_state ON alerts(state, updated_ms);
    """,
    # 4: per-minute roll-ups of the core metrics (count and sum per node and minute), so
    #    long ranges cost what they return, not what is stored. Filled incrementally from
    #    readings in rowid order; meta.rollup_upto is the last readings.id rolled up.
    """
    CREATE TABLE rollup_1m (
        node_id INTEGER NOT NULL,
        minute  INTEGER NOT NULL,             -- ts // 60000
        n_temperature INTEGER NOT NULL, s_temperature REAL NOT NULL,
        n_humidity    INTEGER NOT NULL, s_humidity    REAL NOT NULL,
        n_power       INTEGER NOT NULL, s_power       REAL NOT NULL,
        n_comfort     INTEGER NOT NULL, s_comfort     REAL NOT NULL,
        PRIMARY KEY (node_id, minute)
    ) WITHOUT ROWID;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('rollup_upto', 0);
    """,
    # 5: API tokens (only a hash is kept) and the audit log of mutating requests.
    """
    CREATE TABLE tokens (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        role       TEXT NOT NULL,            -- operator | analyst | viewer | agent
        node       TEXT,                     -- agent tokens: the one node they may write
        hash       TEXT NOT NULL UNIQUE,     -- sha256 of the token
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    );
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        ts      INTEGER NOT NULL,
        actor   TEXT,                        -- token name; NULL when auth is off
        role    TEXT,
        method  TEXT NOT NULL,
        path    TEXT NOT NULL,
        params  TEXT NOT NULL DEFAULT '{}',  -- JSON: query and body parameters
        status  INTEGER NOT NULL,
        outcome TEXT NOT NULL                -- ok, or the error kind
    );
    CREATE INDEX audit_ts ON audit(ts);
    """,
    # 6: the declared fleet (fogd apply / POST /fleet): one row, the declaration as JSON.
    """
    CREATE TABLE fleet (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        spec       TEXT NOT NULL,            -- JSON of fogd.fleet.FleetSpec
        revision   INTEGER NOT NULL,         -- +1 on every change
        updated_ms INTEGER NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
