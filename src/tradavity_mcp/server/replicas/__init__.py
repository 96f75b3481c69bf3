"""What replicas share beyond the write ledger (`--redis`, `TRADAVITY_MCP_SECRET_KEY`).

One process keeps this state in memory; behind a load balancer each piece lives in Redis
(or is derived from the shared secret) so any replica can serve any request:

* `redis_client`: the process's one Redis client (`open_redis`);
* `window`: one sliding rate window per API key, taken atomically by every replica;
* `keys`: key checks against `/me` (a verified key's scopes, a refusal) by fingerprint;
* `secret`: the SDK's request-state key, so a multi-round-trip request may come back to
  another replica;
* `ready`: `/readyz`, whether the store and Redis answer.

Sync runs, events, cooldowns and the subscription bus are shared by `sync/shared.py`; the
ledger and OAuth grants by their PostgreSQL stores (`writes/store_pg.py`,
`oauth/store_pg.py`).
"""
