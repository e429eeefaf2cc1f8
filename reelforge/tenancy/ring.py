"""An API process's copy of the managed keys, so authenticating a request reads no database.

The copy is refreshed when any key changes: a background loop reads `KeyStore.version()`
(one indexed aggregate) every `refresh_every_s` and reloads the keys only when it moved, so a
revocation or a new limit made on any replica (or by `reelforge keys`) is in force on every
replica within that period. When a key was last used is written in batches, not per request.
While the database is down the last copy stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import time

from reelforge.tenancy.keys import ApiKey, KeyLimits, KeyStore, key_id_of

__all__ = ["KeyRing"]

log = logging.getLogger(__name__)


class KeyRing:
    def __init__(
        self, store: KeyStore, *, refresh_every_s: float = 0.5, record_every_s: float = 30.0
    ) -> None:
        self.store = store
        self.refresh_every_s = refresh_every_s
        self.record_every_s = record_every_s
        self._keys: dict[str, ApiKey] = {}
        self._limits: dict[str, KeyLimits] = {}  # by tenant
        self._version: tuple[int, float | None] | None = None
        self._used: dict[str, float] = {}

    @property
    def has_keys(self) -> bool:
        """Whether any key was ever made, revoked ones included: such a server requires keys
        of every client (revoking the last key must not open it to keyless callers)."""
        return self._version is not None and self._version[0] > 0

    def lookup(self, secret: str) -> ApiKey | None:
        """The key this secret belongs to, if it is in force (constant-time comparison)."""
        key_id = key_id_of(secret)
        key = self._keys.get(key_id) if key_id is not None else None
        now = time.time()
        if key is None or not key.matches(secret) or not key.usable(now):
            return None
        self._used[key.id] = now
        return key

    def limits_for(self, tenant: str) -> KeyLimits | None:
        """The limits of the key that is `tenant`, or None (a bootstrap key, loopback)."""
        return self._limits.get(tenant)

    def refresh(self) -> bool:
        """Reload the keys if any changed; True if they did."""
        version = self.store.version()
        if version == self._version:
            return False
        self._keys = {key.id: key for key in self.store.list_keys(include_revoked=False)}
        self._limits = {key.tenant: key.limits for key in self._keys.values()}
        self._version = version
        return True

    def record_use(self) -> None:
        used, self._used = self._used, {}
        try:
            self.store.record_use(used)
        except Exception:  # the next round writes them; last-used is advisory
            self._used = {**used, **self._used}
            raise

    async def run(self) -> None:
        """The background loop (`ApiContext.background`): refresh, and record use."""
        last_record = time.monotonic()
        failing = False
        while True:
            try:
                await asyncio.to_thread(self.refresh)
                if time.monotonic() - last_record >= self.record_every_s:
                    last_record = time.monotonic()
                    await asyncio.to_thread(self.record_use)
                if failing:
                    log.info("API keys: reading the database again")
                failing = False
            except Exception as exc:
                if not failing:  # one line per outage, not one per round
                    log.warning(
                        "API keys: cannot read the database (%s); keeping the last copy", exc
                    )
                failing = True
            await asyncio.sleep(self.refresh_every_s)
