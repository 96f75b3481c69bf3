"""Fault injection, deterministic under a seed.

`FaultSpec.parse("drop_after_commit=0.2,error_500=0.1,deadlock_503=0.1,rate_limit_429=0.05,
broker_api_error=0.5,sync_failed=0.1,latency_ms=50")`: each rate is the chance per
authenticated request (the drop applies to writes only); `latency_ms` is added to every
request. `broker_api_error` (502) and `sync_failed` (500) apply only to manual sync triggers
(`POST /autosync/connections/{id}/sync`), drawn after the endpoint's own gates (plan,
inactive connection, cooldown, expired token) pass, where the broker would be called.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

__all__ = ["FAULT_KINDS", "SYNC_FAULT_KINDS", "FaultSpec", "Faults"]

#: Drawn for every authenticated request (the drop for writes only), in this order.
FAULT_KINDS = ("drop_after_commit", "error_500", "deadlock_503", "rate_limit_429")
#: Drawn only by the manual sync endpoint, once its gates pass.
SYNC_FAULT_KINDS = ("broker_api_error", "sync_failed")


@dataclass(frozen=True)
class FaultSpec:
    drop_after_commit: float = 0.0
    error_500: float = 0.0
    deadlock_503: float = 0.0
    rate_limit_429: float = 0.0
    broker_api_error: float = 0.0
    sync_failed: float = 0.0
    latency_ms: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, raw = part.partition("=")
            name = name.strip()
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"fault {name} needs a number, got {raw!r}") from None
            if value < 0 or (name != "latency_ms" and value > 1):
                raise ValueError(f"fault {name} must be a rate from 0 to 1")
            values[name] = value
        return cls(**values)


class Faults:
    """Draws faults from one seeded generator, so a run can be repeated exactly."""

    def __init__(self, spec: FaultSpec | None, seed: int) -> None:
        self.spec = spec
        self._rng = random.Random(seed)

    def draw(self, kind: str) -> bool:
        if self.spec is None:
            return False
        rate = float(getattr(self.spec, kind))
        return rate > 0 and self._rng.random() < rate
