-- The Tekton Results database schema: the `results` and `records` tables as
-- upstream's API server creates them (GORM AutoMigrate of the models in
-- tektoncd/results pkg/api/server/db/model.go, run at start-up when
-- DB_ENABLE_AUTO_MIGRATION=true, the default).
--
-- tekton-results-logs only reads these tables (to resolve a log name to its
-- run); this file exists so that tests and local set-ups have the same schema
-- as a real Results installation. Column names, types, keys and index names
-- follow GORM's PostgreSQL DDL for those models: `string` with `size:N` is
-- varchar(N), `time.Time` is timestamptz, `int32` is integer, fields tagged
-- `type:jsonb` are jsonb, and the foreign key is GORM's `fk_records_result`.
--
-- Idempotent: safe to apply to a database that already has the tables
-- (including one upstream created itself).

CREATE TABLE IF NOT EXISTS results (
    parent                    varchar(64)  NOT NULL, -- the namespace
    id                        varchar(64)  NOT NULL, -- random UUID chosen by the server
    name                      varchar(64),           -- <result> in <parent>/results/<result>
    annotations               jsonb,
    created_time              timestamptz DEFAULT current_timestamp,
    updated_time              timestamptz DEFAULT current_timestamp,
    -- RecordSummary (embedded, prefix recordsummary_): the top-level record.
    recordsummary_record      varchar(256),          -- <parent>/results/<result>/records/<record>
    recordsummary_type        varchar(768),          -- e.g. tekton.dev/v1.PipelineRun
    recordsummary_start_time  timestamptz,
    recordsummary_end_time    timestamptz,
    recordsummary_status      integer,               -- 0 UNKNOWN, 1 SUCCESS, 2 FAILURE, 3 TIMEOUT, 4 CANCELLED
    recordsummary_annotations jsonb,
    etag                      varchar(128),          -- "<id>-<updated_time as Unix ns>"
    PRIMARY KEY (parent, id)
);

CREATE UNIQUE INDEX IF NOT EXISTS results_by_name ON results (parent, name);

CREATE TABLE IF NOT EXISTS records (
    parent       varchar(64) NOT NULL, -- the namespace
    result_id    varchar(64) NOT NULL, -- results.id of the owning result
    result_name  varchar(64),          -- results.name of the owning result
    id           varchar(64) NOT NULL, -- random UUID chosen by the server
    name         varchar(64),          -- <record> in .../records/<record>: the run's UID for runs
    type         varchar(768),         -- <apiVersion>.<Kind>, e.g. tekton.dev/v1.TaskRun
    data         jsonb,                -- the whole object as JSON (json.Marshal of the run)
    created_time timestamptz DEFAULT current_timestamp,
    updated_time timestamptz DEFAULT current_timestamp,
    etag         varchar(128),         -- "<id>-<updated_time as Unix ns>"
    PRIMARY KEY (parent, result_id, id),
    CONSTRAINT fk_records_result FOREIGN KEY (parent, result_id)
        REFERENCES results (parent, id) ON DELETE CASCADE ON UPDATE CASCADE
);

-- Not unique here: older upstream DDL (schema/results.sql) and model tags made
-- it unique, the current models do not, so a reader must not rely on it.
CREATE INDEX IF NOT EXISTS records_by_name ON records (parent, result_name, name);
