"""``vap-admin``: create, list and revoke API keys (on the database of ``VAP_DATABASE__URL``).

    vap-admin keys create --tenant acme --scope scenarios:read --scope scenarios:write --name ci
    vap-admin keys list [--tenant acme]
    vap-admin keys revoke <key_id>

``create`` prints the key alone on stdout, once: it is not stored, only its hash is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vap_api.auth.keys import Scope, create_key, list_keys, revoke_key
from vap_common.db import make_engine, make_session_factory
from vap_common.settings import DatabaseServiceSettings

# Without --scope a key may read and manage scenarios (not /metrics).
DEFAULT_SCOPES = (Scope.SCENARIOS_READ, Scope.SCENARIOS_WRITE)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vap-admin", description="Manage the API keys of VAP's REST API.")
    keys = parser.add_subparsers(dest="area", required=True).add_parser("keys", help="API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--tenant", required=True, help="lower-case DNS label, e.g. acme")
    create.add_argument(
        "--scope",
        action="append",
        choices=[scope.value for scope in Scope],
        help=f"repeat for several (default: {' and '.join(scope.value for scope in DEFAULT_SCOPES)})",
    )
    create.add_argument("--name", help="what the key is for (shown by list)")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant")
    revoke = actions.add_parser(
        "revoke", help="revoke a key by its id (API processes stop accepting it within VAP_AUTH__KEY_CACHE_SECONDS)"
    )
    revoke.add_argument("key_id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    engine = make_engine(DatabaseServiceSettings().database)
    sessions = make_session_factory(engine)
    try:
        with sessions() as session:
            if arguments.action == "create":
                scopes = frozenset(Scope(value) for value in arguments.scope or DEFAULT_SCOPES)
                try:
                    key = create_key(session=session, tenant=arguments.tenant, scopes=scopes, name=arguments.name)
                except ValueError as error:
                    print(f"vap-admin: {error}", file=sys.stderr)
                    return 2
                print(key)
                print("store this key now: it is not shown again", file=sys.stderr)
            elif arguments.action == "list":
                for info in list_keys(session=session, tenant=arguments.tenant):
                    revoked = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
                    print(
                        f"{info.key_id}  {info.tenant}  {','.join(info.scopes)}  "
                        f"created {info.created_at:%Y-%m-%d %H:%M}  {revoked}  {info.name or ''}".rstrip()
                    )
            elif not revoke_key(session=session, key_id=arguments.key_id):
                print(f"vap-admin: no active key {arguments.key_id!r}", file=sys.stderr)
                return 1
    finally:
        engine.dispose()
    return 0


def run() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    run()
