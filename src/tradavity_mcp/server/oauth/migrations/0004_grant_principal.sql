-- Each grant's principal: the one-way name (`principal_for_key` of its key) the write
-- ledger files its user's calls under, so that the resumer finds the grant whose key
-- finishes them after a restart, without the user. Grants made before this are named
-- when the server first looks (their keys opened once, `TradavityProvider.key_for`).
ALTER TABLE tradavity_oauth.grants ADD COLUMN principal text;
CREATE INDEX grants_by_principal ON tradavity_oauth.grants (principal) WHERE revoked IS NULL;
