-- One-time upload links (issue 28): a call's screenshot step waiting for the trader's
-- file. The token is kept only as its SHA-256; the file, once taken, is a blob of the call.
CREATE TABLE upload_links (
    token_hash   text PRIMARY KEY,
    principal    text NOT NULL,
    tool         text NOT NULL,
    call_id      text NOT NULL,
    trade_number integer NOT NULL,
    state        text NOT NULL,
    created_at   double precision NOT NULL,
    expires_at   double precision NOT NULL,
    filename     text,
    digest       text,
    taken_at     double precision
);
CREATE INDEX upload_links_by_expiry ON upload_links (expires_at);
