"""Managed API keys in the job database: created, listed, rotated and revoked by the
`reelforge keys` commands and the admin API, read by every API replica.

A secret reads `rf_<id>_<random>`: `id` is the key's public handle (listed, logged, named in
the audit log) and finds its row; only the SHA-256 of the whole secret is stored, compared in
constant time. A fast hash is right here, unlike for passwords: the random part carries 256
bits, so there is no dictionary to try against a leaked hash.

Each key is its own tenant (`key-<id>`), kept across rotations, so a rotated key still sees
its jobs.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Row, func, select

from reelforge.jobs.db import db_now, reading
from reelforge.jobs.schema import api_keys, audit_log

__all__ = [
    "SECRET_PREFIX",
    "ApiKey",
    "AuditEntry",
    "KeyLimits",
    "KeyStore",
    "Scope",
    "hash_secret",
    "key_id_of",
]

SECRET_PREFIX = "rf_"
_ID_HEX = 12
_SECRET_SHAPE = re.compile(r"rf_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}")
_DAY_S = 86400.0


class Scope(enum.StrEnum):
    READ = "read"
    """Polls, lists, downloads, usage of its own."""
    GENERATE = "generate"
    """Create, cancel, delete its own generations."""
    ADMIN = "admin"
    """Keys, every tenant's jobs and usage, the audit log."""


DEFAULT_SCOPES = frozenset({Scope.READ, Scope.GENERATE})
ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True)
class KeyLimits:
    """What a key may use; None: no limit (`tenancy.limits` enforces them)."""

    max_concurrent: int | None = None  # jobs in flight: queued or running
    max_queued: int | None = None  # jobs waiting to start
    daily_video_seconds: float | None = None  # seconds of video made since 00:00 UTC
    rate_per_minute: int | None = None  # requests, of any route

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_concurrent": self.max_concurrent,
            "max_queued": self.max_queued,
            "daily_video_seconds": self.daily_video_seconds,
            "rate_per_minute": self.rate_per_minute,
        }


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    tenant: str
    scopes: frozenset[Scope]
    limits: KeyLimits
    created_at: float
    updated_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    secret_hash: str = field(repr=False)

    @property
    def prefix(self) -> str:
        """What the secret starts with: enough to tell keys apart, nothing to use."""
        return f"{SECRET_PREFIX}{self.id}_"

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(hash_secret(secret).encode(), self.secret_hash.encode())

    def public(self) -> dict[str, Any]:
        """The key as listed: no secret, no hash."""
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "tenant": self.tenant,
            "scopes": sorted(self.scopes),
            "limits": self.limits.as_dict(),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }

    @classmethod
    def from_row(cls, row: Row[Any]) -> ApiKey:
        return cls(
            id=row.id,
            name=row.name,
            tenant=row.tenant,
            scopes=frozenset(Scope(s) for s in json.loads(row.scopes)),
            limits=KeyLimits(
                max_concurrent=row.max_concurrent,
                max_queued=row.max_queued,
                daily_video_seconds=row.daily_video_seconds,
                rate_per_minute=row.rate_per_minute,
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            secret_hash=row.secret_hash,
        )


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    actor: str
    action: str
    target: str | None
    source: str
    detail: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "source": self.source,
            "detail": self.detail,
        }


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_of(secret: str) -> str | None:
    """The key id a well-formed secret carries, or None."""
    match = _SECRET_SHAPE.fullmatch(secret)
    return match.group(1) if match else None


def _new_secret(key_id: str) -> str:
    return f"{SECRET_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


class KeyStore:
    """The `api_keys` and `audit_log` tables. Every change records who made it (`actor`: a
    key id, or `cli`) and from where (`source`: an address, or `cli`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._now = db_now(engine)

    def create(
        self,
        name: str,
        *,
        scopes: Iterable[Scope] = DEFAULT_SCOPES,
        limits: KeyLimits = KeyLimits(),
        expires_in_days: float | None = None,
        actor: str = "cli",
        source: str = "cli",
    ) -> tuple[ApiKey, str]:
        """A new key and its secret, which is shown this once and stored nowhere."""
        key_id = secrets.token_hex(_ID_HEX // 2)
        secret = _new_secret(key_id)
        scope_list = sorted({Scope(s) for s in scopes})
        expires = None if expires_in_days is None else self._now + expires_in_days * _DAY_S
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    name=name,
                    tenant=f"key-{key_id}",
                    secret_hash=hash_secret(secret),
                    scopes=json.dumps(scope_list),
                    **limits.as_dict(),
                    created_at=self._now,
                    updated_at=self._now,
                    expires_at=expires,
                )
            )
            detail = {"name": name, "scopes": scope_list, **limits.as_dict()}
            self._audit(conn, actor, "key.create", key_id, source, detail)
        key = self.get(key_id)
        assert key is not None
        return key, secret

    def get(self, key_id: str) -> ApiKey | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return ApiKey.from_row(row) if row is not None else None

    def list_keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with reading(self.engine) as conn:
            return [ApiKey.from_row(row) for row in conn.execute(query)]

    def revoke(self, key_id: str, *, actor: str = "cli", source: str = "cli") -> ApiKey | None:
        """End the key at once (every replica refuses it within a second); None: no such key."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self._now, updated_at=self._now)
            ).rowcount
            if changed:
                self._audit(conn, actor, "key.revoke", key_id, source, {})
        return self.get(key_id)

    def rotate(
        self, key_id: str, *, actor: str = "cli", source: str = "cli"
    ) -> tuple[ApiKey, str] | None:
        """A new secret for the key (the old one stops working); its id, tenant, scopes and
        limits stay. None: no such key, or it is revoked."""
        key = self.get(key_id)
        if key is None or key.revoked_at is not None:
            return None
        secret = _new_secret(key_id)
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id)
                .values(secret_hash=hash_secret(secret), updated_at=self._now)
            )
            self._audit(conn, actor, "key.rotate", key_id, source, {})
        rotated = self.get(key_id)
        assert rotated is not None
        return rotated, secret

    def set_limits(
        self, key_id: str, limits: KeyLimits, *, actor: str = "cli", source: str = "cli"
    ) -> ApiKey | None:
        with self.engine.begin() as conn:
            changed = conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id)
                .values(**limits.as_dict(), updated_at=self._now)
            ).rowcount
            if changed:
                self._audit(conn, actor, "key.limits", key_id, source, limits.as_dict())
        return self.get(key_id)

    def version(self) -> tuple[int, float | None]:
        """Changes to any key change this: one cheap read for replicas to poll."""
        query = select(func.count(), func.max(api_keys.c.updated_at))
        with reading(self.engine) as conn:
            count, latest = conn.execute(query).one()
        return int(count), latest

    def record_use(self, last_used: Mapping[str, float]) -> None:
        """Write when keys were last used (batched by the caller: not a write per request)."""
        if not last_used:
            return
        with self.engine.begin() as conn:
            for key_id, at in last_used.items():
                conn.execute(
                    api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=at)
                )

    def audit(
        self,
        actor: str,
        action: str,
        target: str | None,
        source: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            self._audit(conn, actor, action, target, source, detail or {})

    def audit_entries(self, *, after_seq: int = 0, limit: int = 100) -> list[AuditEntry]:
        query = (
            select(audit_log)
            .where(audit_log.c.seq > after_seq)
            .order_by(audit_log.c.seq)
            .limit(limit)
        )
        with reading(self.engine) as conn:
            return [
                AuditEntry(
                    seq=row.seq,
                    at=row.at,
                    actor=row.actor,
                    action=row.action,
                    target=row.target,
                    source=row.source,
                    detail=json.loads(row.detail) if row.detail else {},
                )
                for row in conn.execute(query)
            ]

    def _audit(
        self,
        conn: Any,
        actor: str,
        action: str,
        target: str | None,
        source: str,
        detail: Mapping[str, Any],
    ) -> None:
        conn.execute(
            audit_log.insert().values(
                at=self._now,
                actor=actor,
                action=action,
                target=target,
                source=source[:255],
                detail=json.dumps(dict(detail)),
            )
        )
