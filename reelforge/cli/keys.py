"""`reelforge keys create | list | revoke | rotate`: managed API keys, on the configured
database directly (as `serve` finds it: REELFORGE_DATABASE_URL, else the data dir's SQLite),
so an operator needs no running server and no admin key to make the first one."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from reelforge.cli import common, parsing

if TYPE_CHECKING:
    from reelforge.tenancy.keys import ApiKey, KeyStore

__all__ = ["add_command", "format_keys"]

_SCOPES = ("read", "generate", "admin")

_DESCRIPTION = """\
Create, list, rotate and revoke the server's API keys. Keys live in the job database, hashed
(the secret is printed once, at create or rotate, and stored nowhere); every API replica
refuses a revoked key within a second, without a restart. Each key is its own tenant: it sees
only its own generations (an admin key may ask for any tenant's). Scopes: read (polls, lists,
downloads), generate (create, cancel, delete), admin (keys, every tenant's jobs, usage, the
audit log)."""


_ENVIRONMENT = [
    ("REELFORGE_DATABASE_URL", "the database (default: the data dir's SQLite, as serve's)"),
    ("REELFORGE_DATA_DIR", "where the default SQLite database lives"),
]


def add_command(commands: Any) -> None:
    keys = parsing.add_command(
        commands,
        "keys",
        summary="create, list, rotate and revoke API keys",
        description=_DESCRIPTION,
        examples=[
            "reelforge keys create --name web-app --max-concurrent 2 --rate-per-minute 120",
            "reelforge keys create --name ops --scopes read,generate,admin --json",
            "reelforge keys list",
            "reelforge keys revoke 3f9c2a1b7d04",
        ],
        environment=_ENVIRONMENT,
    )
    actions = keys.add_subparsers(
        dest="keys_action", required=True, metavar="ACTION", title="actions"
    )

    create = _action(
        actions,
        "create",
        "make a key; prints its secret once",
        "Make a key with its scopes and limits, and print its secret: the only time it is shown.",
        ["reelforge keys create --name web-app --max-concurrent 2 --daily-video-seconds 600"],
    )
    create.add_argument("--name", required=True, help="what the key is for (shown in lists)")
    create.add_argument(
        "--scopes",
        type=_scopes,
        default=["read", "generate"],
        metavar="LIST",
        help="comma-separated: read, generate, admin [default: read,generate]",
    )
    _add_limit_flags(create)
    create.add_argument(
        "--expires", type=_days, metavar="DAYS", help="end the key after DAYS (up to 36500)"
    )
    create.set_defaults(handler=_run_create)

    listing = _action(
        actions,
        "list",
        "every key, without secrets",
        "Every key: id, name, secret prefix, scopes, state (active, expired, revoked), when "
        "it was made and last used (local time; last use is written every 30 s), and its "
        "limits.",
        ["reelforge keys list --json"],
    )
    listing.set_defaults(handler=_run_list)

    revoke = _action(
        actions,
        "revoke",
        "end a key at once",
        "End a key: every replica refuses it within a second. Its jobs stay.",
        ["reelforge keys revoke 3f9c2a1b7d04"],
    )
    revoke.add_argument("key_id", metavar="ID", help="the key's id (see keys list)")
    revoke.set_defaults(handler=_run_revoke)

    rotate = _action(
        actions,
        "rotate",
        "give a key a new secret",
        "Give a key a new secret (printed once); the old secret stops working. The key keeps "
        "its id, tenant (its jobs), scopes and limits.",
        ["reelforge keys rotate 3f9c2a1b7d04 --json"],
    )
    rotate.add_argument("key_id", metavar="ID", help="the key's id (see keys list)")
    rotate.set_defaults(handler=_run_rotate)

    limits = _action(
        actions,
        "limits",
        "change a key's limits",
        "Change a key's limits; a limit given as 0 is removed, one not given is kept. Every "
        "replica applies the change within a second.",
        ["reelforge keys limits 3f9c2a1b7d04 --max-queued 20 --rate-per-minute 0"],
    )
    limits.add_argument("key_id", metavar="ID", help="the key's id (see keys list)")
    _add_limit_flags(limits)
    limits.set_defaults(handler=_run_limits)


def _action(
    actions: Any, name: str, summary: str, description: str, examples: list[str]
) -> parsing.CommandParser:
    action = parsing.add_command(
        actions,
        name,
        summary=summary,
        description=description,
        examples=examples,
        environment=_ENVIRONMENT,
    )
    action.add_argument("--json", action="store_true", help="print JSON instead of text")
    action.add_argument("--data-dir", metavar="DIR", help="as serve's [$REELFORGE_DATA_DIR]")
    action.add_argument(
        "--database-url", metavar="URL", help="as serve's [$REELFORGE_DATABASE_URL]"
    )
    return action


def _add_limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-concurrent",
        type=int,
        metavar="N",
        help="jobs in flight at once, queued or running (a create past it is a 429)",
    )
    parser.add_argument(
        "--max-queued", type=int, metavar="N", help="jobs waiting to start, at once"
    )
    parser.add_argument(
        "--daily-video-seconds", type=float, metavar="S", help="seconds of video per day"
    )
    parser.add_argument("--rate-per-minute", type=int, metavar="R", help="requests per minute")


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 < days <= 36_500:
        raise argparse.ArgumentTypeError("DAYS must be above 0 and at most 36500")
    return days


def _scopes(text: str) -> list[str]:
    scopes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [scope for scope in scopes if scope not in _SCOPES]
    if unknown or not scopes:
        raise argparse.ArgumentTypeError(
            f"unknown scope {', '.join(unknown) or '(none)'}; choose from {', '.join(_SCOPES)}"
        )
    return scopes


def _open(args: argparse.Namespace) -> KeyStore | None:
    from pydantic import ValidationError

    from reelforge.jobs import open_store
    from reelforge.settings import Settings
    from reelforge.tenancy.keys import KeyStore

    try:
        settings = Settings()
        update = {
            name: getattr(args, name)
            for name in ("data_dir", "database_url")
            if getattr(args, name, None) is not None
        }
        settings = settings.model_copy(update=update)
    except ValidationError as exc:
        print(f"reelforge: error: {exc.errors()[0]['msg']}", file=sys.stderr)
        return None
    if not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_database_url, **settings.database_options())
    return KeyStore(store.engine)


def _limits(args: argparse.Namespace, *, zero_removes: bool = False) -> Any:
    from reelforge.tenancy.keys import KeyLimits

    def value(name: str) -> Any:
        given = getattr(args, name)
        return None if given is None or (zero_removes and given == 0) else given

    return KeyLimits(
        max_concurrent=value("max_concurrent"),
        max_queued=value("max_queued"),
        daily_video_seconds=value("daily_video_seconds"),
        rate_per_minute=value("rate_per_minute"),
    )


def _run_create(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return common.EXIT_USAGE
    from reelforge.tenancy.keys import Scope

    key, secret = store.create(
        args.name,
        scopes=[Scope(s) for s in args.scopes],
        limits=_limits(args),
        expires_in_days=args.expires,
    )
    if args.json:
        print(json.dumps({**key.public(), "secret": secret}))
    else:
        print(f"created key {key.id} ({key.name}), scopes {','.join(sorted(key.scopes))}")
        print(f"secret (shown once, store it now): {secret}")
    store.engine.dispose()
    return common.EXIT_OK


def _run_list(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return common.EXIT_USAGE
    keys = store.list_keys()
    store.engine.dispose()
    if args.json:
        print(json.dumps([key.public() for key in keys]))
        return common.EXIT_OK
    if not keys:
        print("no keys yet: reelforge keys create --name NAME")
        return common.EXIT_OK
    print(format_keys(keys, time.time()))
    return common.EXIT_OK


def _run_revoke(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return common.EXIT_USAGE
    key = store.revoke(args.key_id)
    store.engine.dispose()
    if key is None:
        print(f"reelforge: error: no key {args.key_id}", file=sys.stderr)
        return common.EXIT_USAGE
    print(json.dumps(key.public()) if args.json else f"revoked key {key.id} ({key.name})")
    return common.EXIT_OK


def _run_rotate(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return common.EXIT_USAGE
    rotated = store.rotate(args.key_id)
    store.engine.dispose()
    if rotated is None:
        print(f"reelforge: error: no key {args.key_id} in force", file=sys.stderr)
        return common.EXIT_USAGE
    key, secret = rotated
    if args.json:
        print(json.dumps({**key.public(), "secret": secret}))
    else:
        print(f"rotated key {key.id} ({key.name}); the old secret no longer works")
        print(f"new secret (shown once, store it now): {secret}")
    return common.EXIT_OK


def _run_limits(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return common.EXIT_USAGE
    current = store.get(args.key_id)
    if current is None:
        store.engine.dispose()
        print(f"reelforge: error: no key {args.key_id}", file=sys.stderr)
        return common.EXIT_USAGE
    changes = _limits(args, zero_removes=True)
    given = {n for n in changes.as_dict() if getattr(args, n) is not None}
    merged = {
        name: (changes.as_dict()[name] if name in given else value)
        for name, value in current.limits.as_dict().items()
    }
    from reelforge.tenancy.keys import KeyLimits

    key = store.set_limits(args.key_id, KeyLimits(**merged))
    store.engine.dispose()
    assert key is not None
    print(json.dumps(key.public()) if args.json else f"key {key.id}: {key.limits.as_dict()}")
    return common.EXIT_OK


def format_keys(keys: list[ApiKey], now: float) -> str:
    """`keys list`'s table: one key a line, its limits last (the only column of no set width).
    Times are local, to the minute."""
    lines = [
        f"{'ID':12}  {'NAME':20}  {'PREFIX':16}  {'SCOPES':20}  {'STATE':7}  "
        f"{'CREATED':16}  {'LAST USED':16}  LIMITS"
    ]
    for key in keys:
        lines.append(
            f"{key.id:12}  {key.name[:20]:20}  {key.prefix:16}  "
            f"{','.join(sorted(key.scopes)):20}  {_state(key, now):7}  "
            f"{_when(key.created_at):16}  {_when(key.last_used_at):16}  {_limits_text(key)}"
        )
    return "\n".join(lines)


def _limits_text(key: ApiKey) -> str:
    limits = key.limits
    parts = []
    if limits.max_concurrent is not None:
        parts.append(f"{limits.max_concurrent} in flight")
    if limits.max_queued is not None:
        parts.append(f"{limits.max_queued} queued")
    if limits.daily_video_seconds is not None:
        parts.append(f"{limits.daily_video_seconds:g} s/day")
    if limits.rate_per_minute is not None:
        parts.append(f"{limits.rate_per_minute}/min")
    return ", ".join(parts) or "none"


def _state(key: ApiKey, now: float) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def _when(at: float | None) -> str:
    return "never" if at is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
