"""`--auth oauth`: the server as its own OAuth 2.1 authorization server in front of the
users' Tradavity keys, so remote connectors (claude.ai, the Claude apps, ChatGPT) can
connect. `endpoints` has the routes, `provider` the decisions, `consent` the page,
`clients` client metadata documents and registration limits, `store` the state (SQLite,
or PostgreSQL shared by replicas with `--store`: `store_pg`, chosen in `stores`; the
server awaits it through `offload`, off the event loop), `crypto` the secret and the key
at rest.
"""

from __future__ import annotations

from .consent import KeyCheck, KeyRefused
from .endpoints import OAuthOptions, OAuthServer, resource_metadata_routes, store_down
from .provider import Resolved
from .store import OAuthStoreUnavailable

__all__ = [
    "KeyCheck",
    "KeyRefused",
    "OAuthOptions",
    "OAuthServer",
    "OAuthStoreUnavailable",
    "Resolved",
    "resource_metadata_routes",
    "store_down",
]
