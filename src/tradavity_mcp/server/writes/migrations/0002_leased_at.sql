-- When each lease was taken or renewed, on PostgreSQL's own clock. A lease taken before
-- PostgreSQL last started outlives its owner's session lock (every session ended with
-- the restart, the living replicas' too), so it is not taken for a dead one's until it
-- runs out (`store_pg.PgLedger.lease_alive`). Set here, whatever statement moves a lease.
ALTER TABLE calls ADD COLUMN leased_at timestamptz;
CREATE OR REPLACE FUNCTION calls_leased_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.leased_at := clock_timestamp();
    RETURN NEW;
END
$$;
CREATE TRIGGER calls_leased_at BEFORE INSERT OR UPDATE OF owner, lease_until ON calls
    FOR EACH ROW EXECUTE FUNCTION calls_leased_at();
