-- Alerts, gate decisions and the hash-chained audit log.
-- depends: 0001_events_and_state

CREATE TABLE alerts (
    alert_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id             text NOT NULL,
    rule_code           text NOT NULL,            -- stable code, e.g. seal_mismatch
    severity            text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status              text NOT NULL DEFAULT 'open'
                            CHECK (status IN ('open', 'acknowledged', 'resolved')),
    -- What the alert is about: a container visit, a device, a lane or a passage.
    subject_kind        text NOT NULL CHECK (subject_kind IN ('visit', 'device', 'lane', 'passage')),
    subject_id          text NOT NULL,
    visit_id            bigint REFERENCES container_visits,
    container_number    char(11),
    declaration_number  char(18),
    device_id           text,
    lane_id             text,
    message_zh          text NOT NULL,
    message_en          text NOT NULL,
    evidence            jsonb NOT NULL DEFAULT '{}',   -- event ids, declared and observed values
    first_raised_at     timestamptz NOT NULL DEFAULT now(),
    last_raised_at      timestamptz NOT NULL DEFAULT now(),
    occurrences         integer NOT NULL DEFAULT 1,
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    acknowledge_reason  text,
    resolved_at         timestamptz,
    resolved_by         text,                     -- null when the condition cleared by itself
    resolve_reason      text
);
-- One alert per subject and rule until it is resolved: a repeat updates it.
CREATE UNIQUE INDEX alerts_one_unresolved_idx ON alerts (rule_code, subject_kind, subject_id)
    WHERE status <> 'resolved';
CREATE INDEX alerts_site_status_idx ON alerts (site_id, status, last_raised_at DESC);
CREATE INDEX alerts_visit_idx ON alerts (visit_id);

CREATE TABLE gate_decisions (
    command_id          uuid PRIMARY KEY,
    site_id             text NOT NULL,
    lane_id             text NOT NULL,
    device_id           text NOT NULL,            -- the lane device the command is sent to
    passage_id          text NOT NULL,
    event_id            uuid,                     -- the passage event that asked
    container_numbers   text[] NOT NULL DEFAULT '{}',
    decision            text NOT NULL CHECK (decision IN ('release', 'hold', 'manual')),
    reasons             jsonb NOT NULL DEFAULT '[]',   -- [{code, message_zh, message_en}]
    issued_at           timestamptz NOT NULL,
    valid_until         timestamptz NOT NULL,
    overrides           uuid REFERENCES gate_decisions,  -- set on an officer's override
    issued_by           text                           -- null for Kouan's own decisions
);
CREATE INDEX gate_decisions_lane_idx ON gate_decisions (site_id, lane_id, issued_at DESC);

-- Append-only log of every human action. Each record's hash covers its content and
-- the previous record's hash, so changing or deleting a record breaks the chain.
CREATE TABLE audit_log (
    audit_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    action        text NOT NULL,                  -- e.g. alert.acknowledge, decision.override
    subject       text NOT NULL,                  -- e.g. alert:42
    site_id       text,
    reason        text,
    details       jsonb NOT NULL DEFAULT '{}',
    prev_hash     bytea,
    hash          bytea NOT NULL
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
