-- API users, API keys, and the indexes behind the API's feeds and live stream.
-- depends: 0002_alerts_decisions_audit

-- People who log in with a password (OAuth2 password flow). Every user has one role
-- and is scoped to one or more sites; an object of another site does not exist for
-- them.
CREATE TABLE api_users (
    username       text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$'),
    password_hash  text NOT NULL,                 -- argon2id, PHC string format
    role           text NOT NULL CHECK (role IN
                       ('customs_officer', 'supervisor', 'integrator', 'auditor', 'admin')),
    sites          text[] NOT NULL CHECK (cardinality(sites) > 0),
    display_name   text,
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Keys for integrators' systems, sent in X-API-Key. Only the SHA-256 of the secret
-- part is stored: the key is shown once, when it is created.
CREATE TABLE api_keys (
    key_id         text PRIMARY KEY,              -- public part of the key, e.g. 3f9a0c1b2d4e
    name           text NOT NULL UNIQUE,
    secret_sha256  bytea NOT NULL,
    role           text NOT NULL CHECK (role IN
                       ('customs_officer', 'supervisor', 'integrator', 'auditor', 'admin')),
    sites          text[] NOT NULL CHECK (cardinality(sites) > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz,
    revoked_at     timestamptz
);

-- The pull feed (GET /api/v1/events) pages through a site's events in stored order.
CREATE INDEX events_site_stored_idx ON events (site_id, stored_at, device_id, seq);

-- The live stream polls what changed since its last poll.
CREATE INDEX container_visits_site_updated_idx ON container_visits (site_id, updated_at);
CREATE INDEX alerts_site_changed_idx
    ON alerts (site_id, (greatest(last_raised_at, acknowledged_at, resolved_at)));
