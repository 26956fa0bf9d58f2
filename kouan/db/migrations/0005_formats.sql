-- Terminal feed and customs response history: versions of external events and
-- every customs response as received.
-- depends: 0002_alerts_decisions_audit

-- DCSA Track and Trace repeats an eventID with a later eventUpdatedDateTime to
-- correct an event. Both versions stay in `events` (rows are never updated); this
-- view orders the versions of one external event and names the current one, each
-- later version pointing to the one it replaces.
CREATE INDEX events_version_key_idx ON events ((derived ->> 'version_key'))
    WHERE kind = 'equipment.event';

CREATE VIEW equipment_event_versions AS
SELECT
    event_id,
    device_id,
    seq,
    site_id,
    occurred_at,
    stored_at,
    derived ->> 'version_key' AS version_key,
    (derived ->> 'version_at')::timestamptz AS version_at,
    lag(event_id) OVER w AS supersedes_event_id,
    lead(event_id) OVER w AS superseded_by_event_id,
    lead(event_id) OVER w IS NULL AS is_current
FROM events
WHERE kind = 'equipment.event' AND derived ? 'version_key'
WINDOW w AS (
    PARTITION BY site_id, derived ->> 'version_key'
    ORDER BY (derived ->> 'version_at')::timestamptz, stored_at, device_id, seq
);

-- Every customs response (CUSRES, 报关单 receipt) as received, append-only. The
-- declaration row carries the latest status; this table is its history.
CREATE TABLE customs_responses (
    response_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    declaration_number  char(18) NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    source_format       text NOT NULL,            -- CUSRES, CUSTOMS_JSON
    message_ref         text,
    customs_status      text NOT NULL,            -- released, held, inspection_ordered, rejected, ...
    other_holds         text[] NOT NULL DEFAULT '{}',
    applied_status      text,                     -- declarations.status after this response
    applied             boolean NOT NULL,
    reason              text,                     -- why it was applied as it was, or not at all
    document            jsonb NOT NULL
);
CREATE INDEX customs_responses_declaration_idx ON customs_responses (declaration_number, received_at);

-- Equipment references that are not ISO 6346 numbers (APNR7744962 in the DCSA
-- examples) never reach events.container_numbers; the DCSA export finds them here.
CREATE INDEX events_equipment_reference_idx ON events ((derived ->> 'equipment_reference'))
    WHERE kind = 'equipment.event';
