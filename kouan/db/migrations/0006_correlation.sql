-- Correlation: one decision per asking passage, lookups for corrections and the
-- dwell sweep, and an audit log that TRUNCATE cannot empty either.
-- depends: 0002_alerts_decisions_audit

-- Kouan's own decision for a passage is written once; an officer's override is a
-- second row that points to it with ``overrides``.
CREATE UNIQUE INDEX gate_decisions_event_idx ON gate_decisions (event_id) WHERE overrides IS NULL;
-- At most one override per decision.
CREATE UNIQUE INDEX gate_decisions_overrides_idx ON gate_decisions (overrides) WHERE overrides IS NOT NULL;

-- A read.correction names the event it corrects by event_id.
CREATE INDEX event_keys_event_idx ON event_keys (event_id);

-- The dwell sweep looks for open visits that entered long ago.
CREATE INDEX container_visits_open_since_idx ON container_visits (site_id, first_seen_at)
    WHERE exited_at IS NULL;

-- The newest alert per rule and subject decides whether a finding changes anything.
CREATE INDEX alerts_subject_idx ON alerts (subject_kind, subject_id, rule_code, alert_id DESC);

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
