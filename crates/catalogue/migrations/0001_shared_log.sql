-- The state replicas of one kinsight deployment share (issue 16). Times are epoch
-- milliseconds taken from PostgreSQL's clock, so every replica reads the same values.

-- The shared log: every acknowledged change (a batch of events or a catalogue operation) is in
-- one object in the object store; this table gives each object its place in the one order all
-- replicas apply: records first_seq ..= last_seq. Rows are appended under an advisory lock, so
-- sequence numbers are handed out in commit order and a reader never sees a gap fill later.
CREATE TABLE log_objects (
    first_seq   BIGINT PRIMARY KEY,
    last_seq    BIGINT NOT NULL,
    object_key  TEXT   NOT NULL,
    replica     TEXT   NOT NULL,
    bytes       BIGINT NOT NULL,
    committed_ms BIGINT NOT NULL,
    CHECK (last_seq >= first_seq)
);

-- Checkpoints published by the maintenance leader: the catalogue and segment manifest as of
-- `seq`, in the object store at `object_key`. The newest row is the state a replica starts from.
CREATE TABLE checkpoints (
    version     BIGSERIAL PRIMARY KEY,
    seq         BIGINT NOT NULL,
    object_key  TEXT   NOT NULL,
    epoch       BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL
);

-- Leases: who runs a piece of background work (maintenance, alarm evaluation) and until when.
-- `epoch` grows with every change of holder; writes made as holder check it (fencing).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT   NOT NULL,
    epoch       BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);

-- Live replicas: each one heartbeats its row.
CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,
    address      TEXT   NOT NULL,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    applied_seq  BIGINT NOT NULL
);

-- Small shared documents (scoped tokens, access keys, alarms), each replaced as a whole with
-- optimistic concurrency on `version`.
CREATE TABLE documents (
    name        TEXT PRIMARY KEY,
    body        BYTEA  NOT NULL,
    version     BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
