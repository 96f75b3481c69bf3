-- The browser a consent request's key was checked in (an HMAC of its consent cookie):
-- only that browser may then allow or cancel the request, and no other may replace the
-- key it checked.
ALTER TABLE tradavity_oauth.pending ADD COLUMN browser text;
