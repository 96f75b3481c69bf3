-- What strangers can make the store keep, bounded (oauth/store.py): a registered client
-- is forgotten a day after registration unless it completed an authorization, and once
-- none of its grants is live; a registering address that completed one (known by an
-- HMAC, never in clear) is not held to the registrations' total. The sweeps and that
-- check run on these indexes (consent requests' expiry already has pending_by_expiry).
ALTER TABLE tradavity_oauth.clients ADD COLUMN registered_from text;
CREATE INDEX clients_by_created ON tradavity_oauth.clients (created);
CREATE INDEX clients_by_origin ON tradavity_oauth.clients (registered_from);
CREATE INDEX grants_by_client ON tradavity_oauth.grants (client_id);
-- PostgreSQL uses a deleted row's space again only once VACUUM has seen it: under a
-- flood of consent requests (each deleted within ten minutes, or sooner past the bound)
-- let autovacuum take the table up after a fixed number of deleted rows, not a fifth
-- of it.
ALTER TABLE tradavity_oauth.pending
    SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500);
ALTER TABLE tradavity_oauth.clients
    SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500);
