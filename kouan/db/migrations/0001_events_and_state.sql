-- Events, quarantine, devices, declarations and container visit state.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE sites (
    site_id           text PRIMARY KEY,
    name              text NOT NULL,
    locode            text,                       -- UN/LOCODE, e.g. CNSHA
    customs_district  char(4),                    -- 关区代码
    timezone          text NOT NULL DEFAULT 'Asia/Shanghai',
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lanes (
    site_id     text NOT NULL REFERENCES sites,
    lane_id     text NOT NULL,
    direction   text NOT NULL CHECK (direction IN ('in', 'out', 'scan')),
    mode        text NOT NULL DEFAULT 'automatic' CHECK (mode IN ('automatic', 'manual')),
    mode_reason text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, lane_id)
);

CREATE TABLE devices (
    device_id        text PRIMARY KEY,
    site_id          text NOT NULL REFERENCES sites,
    lane_id          text,
    kind             text NOT NULL,               -- lane, scanner, eseal_reader, tos_feed
    public_key       bytea,                       -- Ed25519, 32 bytes raw
    enabled          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz,
    last_seq         bigint NOT NULL DEFAULT 0,
    seq_gaps         bigint NOT NULL DEFAULT 0,
    clock_offset_ms  double precision,             -- received_at - sent_at of the latest event
    status           jsonb,                        -- latest retained status message
    status_at        timestamptz
);

-- One row per event envelope, as signed by the device, plus the values the
-- collector derived from it. Rows are never updated: corrections are new events.
CREATE TABLE events (
    occurred_at        timestamptz NOT NULL,
    device_id          text NOT NULL,
    seq                bigint NOT NULL,
    event_id           uuid NOT NULL,
    kind               text NOT NULL,
    site_id            text NOT NULL,
    lane_id            text,
    recorded_at        timestamptz NOT NULL,
    sent_at            timestamptz NOT NULL,
    received_at        timestamptz NOT NULL,
    stored_at          timestamptz NOT NULL DEFAULT now(),
    container_numbers  text[] NOT NULL DEFAULT '{}',
    content_sha256     bytea NOT NULL,
    envelope           jsonb NOT NULL,
    derived            jsonb NOT NULL DEFAULT '{}',
    UNIQUE (device_id, seq, occurred_at)
);
SELECT create_hypertable('events', 'occurred_at', chunk_time_interval => interval '1 day');
CREATE INDEX events_containers_idx ON events USING gin (container_numbers);
CREATE INDEX events_site_time_idx ON events (site_id, occurred_at DESC);

-- The hypertable's unique key must include occurred_at, so it cannot stop the same
-- (device_id, seq) arriving again with another occurred_at. This ordinary table
-- holds one row per (device_id, seq) and is what makes a redelivery a no-op and a
-- changed resend a tamper alert. It also avoids ON CONFLICT on hypertable chunks,
-- which TimescaleDB rejects once a chunk is compressed.
CREATE TABLE event_keys (
    device_id       text NOT NULL,
    seq             bigint NOT NULL,
    event_id        uuid NOT NULL,
    occurred_at     timestamptz NOT NULL,
    content_sha256  bytea NOT NULL,
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE quarantine (
    quarantine_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    topic          text NOT NULL,
    client_device  text,                          -- device_id taken from the topic
    device_id      text,                          -- device_id claimed in the payload, if parseable
    seq            bigint,
    reason_code    text NOT NULL,
    reason         text NOT NULL,
    raw            bytea NOT NULL
);
CREATE INDEX quarantine_received_idx ON quarantine (received_at DESC);

CREATE TABLE declarations (
    declaration_number  char(18) PRIMARY KEY,     -- 海关编号
    site_id             text NOT NULL REFERENCES sites,
    customs_district    char(4) NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('import', 'export')),
    status              text NOT NULL CHECK (status IN
                            ('declared', 'inspection_ordered', 'released', 'held', 'cancelled')),
    -- Holds of other authorities (e.g. quarantine) still open: customs release alone
    -- does not make the container free to leave while any is listed.
    other_holds         text[] NOT NULL DEFAULT '{}',
    consignee_code      char(18),                 -- 统一社会信用代码
    consignee_name      text,
    declared_at         timestamptz NOT NULL,
    status_changed_at   timestamptz NOT NULL,
    version             integer NOT NULL DEFAULT 1,
    document            jsonb NOT NULL,           -- the request body as accepted
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE declaration_containers (
    declaration_number  char(18) NOT NULL REFERENCES declarations ON DELETE CASCADE,
    container_number    char(11) NOT NULL,
    size_type           text,
    seal_numbers        text[] NOT NULL DEFAULT '{}',
    gross_weight_kg     numeric(10, 1),
    PRIMARY KEY (declaration_number, container_number)
);
CREATE INDEX declaration_containers_container_idx ON declaration_containers (container_number);

-- Latest state of one container's stay at a site, from gate-in to gate-out, so a
-- status query never scans event history.
CREATE TABLE container_visits (
    visit_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id             text NOT NULL,
    container_number    char(11) NOT NULL,
    declaration_number  char(18),
    status              text NOT NULL,
    customs_status      text NOT NULL DEFAULT 'undeclared',
    declared            boolean NOT NULL DEFAULT false,
    released            boolean NOT NULL DEFAULT false,
    first_seen_at       timestamptz NOT NULL,
    entered_at          timestamptz,
    scanned_at          timestamptz,
    exited_at           timestamptz,
    last_event_at       timestamptz NOT NULL,
    entry_lane          text,
    exit_lane           text,
    truck_plate         text,
    seal_numbers        text[] NOT NULL DEFAULT '{}',
    gross_weight_kg     numeric(10, 1),
    size_type           text,
    flags               text[] NOT NULL DEFAULT '{}',
    event_count         integer NOT NULL DEFAULT 0,
    state               jsonb NOT NULL DEFAULT '{}',
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX container_visits_number_idx ON container_visits (container_number, first_seen_at DESC);
CREATE INDEX container_visits_declaration_idx ON container_visits (declaration_number);
CREATE INDEX container_visits_site_status_idx ON container_visits (site_id, status, last_event_at DESC);
-- At most one open visit (not yet exited) per container and site.
CREATE UNIQUE INDEX container_visits_open_idx ON container_visits (site_id, container_number)
    WHERE exited_at IS NULL;
