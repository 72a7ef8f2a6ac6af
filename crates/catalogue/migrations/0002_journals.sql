-- Journals (issue 16): small state that every replica keeps in memory and changes often —
-- alarm definitions, states, history and the notification outbox — as an ordered list of
-- change sets per journal name, folded now and then into a snapshot.

-- One row per journal: the last entry's number (appends are compare-and-set on it, so two
-- replicas never both append entry n) and the snapshot that replaces the entries up to
-- `snapshot_seq` (which are then deleted).
CREATE TABLE journal_heads (
    name          TEXT PRIMARY KEY,
    last_seq      BIGINT NOT NULL,
    snapshot_seq  BIGINT NOT NULL DEFAULT 0,
    snapshot      BYTEA,
    CHECK (snapshot_seq <= last_seq)
);

CREATE TABLE journal_entries (
    name        TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    written_ms  BIGINT NOT NULL,
    payload     BYTEA  NOT NULL,
    PRIMARY KEY (name, seq)
);
