-- The OAuth authorization server's state on PostgreSQL: the same five tables as the
-- SQLite store (oauth/store.py runs the same SQL on both), in a schema of their own
-- beside the write ledger's. Times are seconds since the epoch (the server's clock).
-- Nothing secret is kept in clear: tokens, codes and consent requests under their
-- SHA-256, a user's Tradavity key sealed with TRADAVITY_MCP_SECRET_KEY and known by its
-- HMAC.
CREATE TABLE tradavity_oauth.clients (
    client_id  text PRIMARY KEY,
    info       text NOT NULL,
    created    double precision NOT NULL
);
CREATE TABLE tradavity_oauth.pending (
    id_hash    text PRIMARY KEY,
    client_id  text NOT NULL,
    info       text NOT NULL,
    expires    double precision NOT NULL,
    checked    text,
    key_sealed bytea
);
CREATE INDEX pending_by_expiry ON tradavity_oauth.pending (expires);
CREATE TABLE tradavity_oauth.grants (
    id          text PRIMARY KEY,
    client_id   text NOT NULL,
    client_name text NOT NULL,
    user_label  text NOT NULL,
    key_mac     text NOT NULL,
    key_sealed  bytea NOT NULL,
    scopes      text NOT NULL,
    resource    text NOT NULL,
    created     double precision NOT NULL,
    last_used   double precision,
    revoked     double precision
);
CREATE INDEX grants_by_created ON tradavity_oauth.grants (created);
CREATE TABLE tradavity_oauth.codes (
    hash       text PRIMARY KEY,
    grant_id   text NOT NULL REFERENCES tradavity_oauth.grants (id),
    info       text NOT NULL,
    expires    double precision NOT NULL,
    used       double precision
);
CREATE INDEX codes_by_grant ON tradavity_oauth.codes (grant_id);
CREATE INDEX codes_by_expiry ON tradavity_oauth.codes (expires);
CREATE TABLE tradavity_oauth.tokens (
    hash       text PRIMARY KEY,
    grant_id   text NOT NULL REFERENCES tradavity_oauth.grants (id),
    kind       text NOT NULL CHECK (kind IN ('access', 'refresh')),
    expires    double precision NOT NULL,
    used       double precision
);
CREATE INDEX tokens_by_grant ON tradavity_oauth.tokens (grant_id, expires);
-- The secret the keys are sealed with, known by an HMAC: a replica started with another
-- TRADAVITY_MCP_SECRET_KEY is refused instead of failing every user's token.
CREATE TABLE tradavity_oauth.secret (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    check_mac  text NOT NULL,
    created    double precision NOT NULL
);
