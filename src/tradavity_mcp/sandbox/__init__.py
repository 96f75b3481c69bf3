"""The Tradavity API sandbox: a contract-faithful emulator of the Public API v1.

It is what a newcomer runs first (`tradavity-mcp sandbox`, `tradavity-mcp demo`), the
backend of the test suites, and the target of fault drills: real v1 paths under `/api/v1`
over SQLite, the `{ok, data, meta}` envelope, Bearer / X-API-Key auth (keys in the query
string refused), scopes (`read:catalog` implicit), the per-key / per-user / per-day sliding
windows and the pre-auth IP window, the idempotency contract (24 h replays per key and
Idempotency-Key, stored with the write they answer; 409 on another body; one leader for
concurrent identical requests), deterministic faults, and seeded demo data. Every rule that
depends on time reads the configured clock.

Shapes the reference leaves open, as built here:

* auto-sync connection: `connection_id, broker_key, broker_name, account_id, account_name,
  is_active, status (active | token_expired | disconnected), token_status (valid | expired
  | none), last_sync_at, next_sync_at` (scheduled every 15 minutes);
* sync log row (`GET /autosync/log`, newest first, `?connection_id=` filter, offset
  pagination): `log_id, connection_id, broker_key, trigger (manual | schedule), status
  (success | partial | failed), started_at, finished_at, imported, skipped, total_fetched,
  errors[], message`. Scheduled runs are written lazily, on the next read after the clock
  passes each 15-minute slot; runs on an expired token fail;
* list payloads are wrapped by resource name (`{"trades": [...]}`, `{"log": [...]}`,
  `{"categories": [...]}` ...); single resources likewise (`{"trade": {...}}`); the sync
  result and `/me` are bare objects; trades paginate by cursor in `meta`, other lists carry
  `total_count` / `has_more` next to the rows;
* offset pagination (`limit`, `offset`) on every list but trades (cursor) and the pure
  catalogs: the default page is 50 everywhere (the smaller of the reference's "50 or 100",
  so a client that does not page shows it soon), the largest 500 for the static lists
  (accounts, tags, tag categories, strategies and a strategy's setups, protocols, copy
  groups, auto-sync connections, goals) and 200 for the high-volume ones (balance events,
  payouts, protocol responses, the sync log; goal snapshots 365); a `limit` or `offset`
  out of range is a 400, not clamped. `total_count` and `has_more` sit in `data` next to
  the rows; rows come in id order (logs and responses newest first);
* the manual sync checks, in order: the connection is yours (404), no body, the Pro plan
  (429), the connection is active (400; archiving its account disconnects it), the 20 s
  cooldown (429), the broker token (401); only then is the broker called, which is where
  the `broker_api_error` (502) and `sync_failed` (500) faults strike. A failed run still
  stamps the cooldown; a broker error leaves a `failed` manual row in the log, a pipeline
  crash none;
* storage: the quota is 5 GB (Pro) or 1 GB (Free) of live screenshot bytes (before any
  optimisation); an upload past it is `413 limit_reached` with `details.cap = "storage"`
  (the per-trade cap says `"per_trade"`);
* a trade's `protocol_responses[]` holds one response per protocol type (any type): the
  trade's own before its copy source's, completed before draft, then the newest;
* `PATCH /trades/{n}` checks the strategy and setup the trade would end with: moving a
  trade to another strategy while its setup belongs to the old one is a 400 on `setup_id`
  (send `setup_id: null` or a setup of the new strategy with it);
* the free plan's soft trade caps are 100 creations per UTC day and 500 per UTC month
  (archived trades count), `details.usage` carrying `day`, `day_cap`, `month`, `month_cap`;
* `account=<name>` on trades, stats and calendar means the active account when an archived
  one has the same name (the archived one only when no active account has it);
* options `asset_config`: `strike_price` a number > 0 and `expiration` a `YYYY-MM-DD` date,
  each checked when present; a confirmation's `was_present` takes the same booleans as
  every other flag (`true`/`false`/`1`/`0`, strings too; null means the default, true);
* a replay returns the cached body byte for byte (its original `meta.request_id` and
  `meta.rate_limit` included) with fresh rate-limit headers and `X-Idempotent-Replay`; a
  failed request is not cached, so its retry runs afresh. Writes without the header are
  accepted (as the reference's own examples are) and not deduplicated.

Seeded data (ids are stable for a given seed; trades move with the clock's today):

* users: 1 Dana Demo (pro, America/New_York; DEMO_KEY every scope, READONLY_KEY every
  read scope, REVOKED_KEY, EXPIRED_KEY), 2 Frank Free (free, Europe/London; FREE_KEY),
  3 Priya Pro (pro, Asia/Singapore; SECOND_PRO_KEY);
* demo accounts: 1 "Apex 50K" (funded, tradovate, BE window -5..5, balance profile),
  2 "Topstep XFA" (trading_combine, topstepx, -2..2), 3 "Personal Live" (live, 0..0),
  4 "Old Sim" (archived); 5 "Free Sim" (user 2); 6 "Sim Pro" (user 3);
* demo tag categories 1 Mistakes, 2 Setups, 3 Psychology; tags 1 FOMO, 2 Revenge,
  3 Overtrading, 4 Moved Stop, 5 Early Exit, 6 Breakout, 7 Pullback, 8 Reversal,
  9 A+ Setup, 10 Opening Range, 11 Confident, 12 Hesitant, 13 Tilted;
* strategies 1 Opening Range Breakout (setups 1 ORB Long, 2 ORB Short), 2 Trend Pullback
  (3 9 EMA Pullback, 4 VWAP Reclaim), 3 Mean Reversion (5 Failed Breakout), confirmations
  1-8 on those setups;
* protocols 1 "Pre-Trade Checklist" (pre_trade, items 1-7: checkbox*, yes_no_na*,
  select* [long, short, neutral], rating*, number, yes_no_na, text; * = required) and
  2 "End-of-Day Review" (end_of_day, items 8-13: rating*, yes_no_na*, number, select
  [trend, range, choppy], checkbox, text); 3 belongs to user 2;
* auto-sync connections 1 (tradovate on account 1, valid) and 2 (rithmic on account 2,
  token expired); 3 and 4 belong to users 2 and 3;
* copy group 1 "Apex + Topstep" (accounts 1 master and 2 at 0.5x); goals 1-4 (the fourth
  paused); balance events and a paid payout on account 1;
* about 220 demo trades over the last 90 days (some 25 of them copies on account 2 of a
  decision on account 1), with executions, tags, grades, strategies and emotions.
"""

from ._app import SandboxConfig, SandboxState, create_app
from ._clock import Clock, ManualClock, ScaledClock, SystemClock
from ._faults import FaultSpec
from ._seed import DEMO_KEY, EXPIRED_KEY, FREE_KEY, READONLY_KEY, REVOKED_KEY, SECOND_PRO_KEY
from ._serve import serve_in_thread
from ._transport import SandboxTransport

__all__ = [
    "DEMO_KEY",
    "EXPIRED_KEY",
    "FREE_KEY",
    "READONLY_KEY",
    "REVOKED_KEY",
    "SECOND_PRO_KEY",
    "Clock",
    "FaultSpec",
    "ManualClock",
    "SandboxConfig",
    "SandboxState",
    "SandboxTransport",
    "ScaledClock",
    "SystemClock",
    "create_app",
    "serve_in_thread",
]
