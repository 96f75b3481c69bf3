-- The write ledger on PostgreSQL: the same three tables as the SQLite ledger.
-- Times are seconds since the epoch (the server's clock), as in SQLite; the rules
-- (writes/ledger.py) are the same SQL on both.
CREATE TABLE calls (
    principal    text NOT NULL,
    tool         text NOT NULL,
    call_id      text NOT NULL,
    args_digest  text NOT NULL,
    args_json    text NOT NULL,
    id_source    text NOT NULL,
    state        text NOT NULL,
    result_json  text,
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL,
    trade_digest text,
    target       text,
    outcome      text,
    twin_of      text,
    owner        text,
    lease_until  double precision,
    PRIMARY KEY (principal, tool, call_id)
);
CREATE INDEX calls_by_digest ON calls (principal, tool, args_digest, created_at);
CREATE INDEX calls_by_trade ON calls (principal, tool, trade_digest, created_at);
CREATE INDEX calls_by_state ON calls (state, updated_at);
CREATE INDEX calls_by_target ON calls (principal, target) WHERE state = 'pending';
CREATE TABLE steps (
    principal    text NOT NULL,
    tool         text NOT NULL,
    call_id      text NOT NULL,
    step         text NOT NULL,
    idem_key     text NOT NULL,
    state        text NOT NULL,
    result_json  text,
    first_sent   double precision NOT NULL,
    updated_at   double precision NOT NULL,
    request_json text,
    error        text,
    PRIMARY KEY (principal, tool, call_id, step)
);
CREATE TABLE blobs (
    principal    text NOT NULL,
    tool         text NOT NULL,
    call_id      text NOT NULL,
    digest       text NOT NULL,
    data         bytea NOT NULL,
    PRIMARY KEY (principal, tool, call_id, digest)
);
