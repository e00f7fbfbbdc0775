"""``vap-admin``: create, list and revoke API keys (on the database of ``VAP_DATABASE__URL``), and
make and rotate the keys that seal camera credentials (``VAP_CAMERA_KEYS``).

    vap-admin keys create --tenant acme --scope scenarios:read --scope scenarios:write --name ci
    vap-admin keys list [--tenant acme]
    vap-admin keys revoke <key_id>
    vap-admin keys generate                               # a new key, printed, not stored
    vap-admin keys register --tenant acme < key.txt       # store a key made before (or --from-env NAME)
    vap-admin camera-keys generate [--id 2026-12]
    vap-admin camera-keys reseal

``keys create`` prints the key alone on stdout, once: it is not stored, only its hash is.
``camera-keys generate`` prints a new ``id:key`` entry: put it first in VAP_CAMERA_KEYS and keep the
old ones after it; once every service runs with it, ``reseal`` seals every stored camera URL with it
(and any stored before sealing existed), after which the old keys may go.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vap_api.auth.keys import Scope, create_key, generate_key, list_keys, register_key, revoke_key
from vap_common import camera_secrets
from vap_common.db import make_engine, make_session_factory
from vap_common.redact import has_credentials
from vap_common.schema import Scenario, Worker
from vap_common.settings import DatabaseServiceSettings

# Without --scope a key may read and manage scenarios (not /metrics).
DEFAULT_SCOPES = (Scope.SCENARIOS_READ, Scope.SCENARIOS_WRITE)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vap-admin", description="Manage the API keys of VAP's REST API and the keys of camera credentials."
    )
    areas = parser.add_subparsers(dest="area", required=True)
    camera_keys = areas.add_parser("camera-keys", help="keys that seal camera credentials (VAP_CAMERA_KEYS)")
    camera_actions = camera_keys.add_subparsers(dest="action", required=True)
    generate = camera_actions.add_parser("generate", help="print a new VAP_CAMERA_KEYS entry, id:key")
    generate.add_argument("--id", default=f"{date.today():%Y-%m-%d}", help="letters, digits, '-' (default: today)")
    camera_actions.add_parser(
        "reseal", help="seal every stored camera URL with the first key of VAP_CAMERA_KEYS (after a rotation)"
    )
    keys = areas.add_parser("keys", help="API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it (once)")
    register = actions.add_parser(
        "register", help="store a key made before (vap-admin keys generate), read from stdin; again: no change"
    )
    register.add_argument("--from-env", metavar="NAME", help="read the key from this environment variable instead")
    for parser_of_key in (create, register):
        parser_of_key.add_argument("--tenant", required=True, help="lower-case DNS label, e.g. acme")
        parser_of_key.add_argument(
            "--scope",
            action="append",
            choices=[scope.value for scope in Scope],
            help=f"repeat for several (default: {' and '.join(scope.value for scope in DEFAULT_SCOPES)})",
        )
        parser_of_key.add_argument("--name", help="what the key is for (shown by list)")
    actions.add_parser("generate", help="print a new key without storing it (for a Secret; then register)")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant")
    revoke = actions.add_parser(
        "revoke", help="revoke a key by its id (API processes stop accepting it within VAP_AUTH__KEY_CACHE_SECONDS)"
    )
    revoke.add_argument("key_id")
    return parser


def reseal(session: Session, keyring: camera_secrets.CameraKeyring) -> int:
    """Seal the stored camera URLs (scenarios, workers) that are not sealed by ``keyring``'s sealing key
    with it; how many rows changed. One transaction: the operator reads either form meanwhile."""
    changed = 0
    with session.begin():
        for table in (Scenario, Worker):
            rows = session.execute(select(table.scenario_uuid, table.camera_url).with_for_update()).all()
            for scenario_uuid, stored in rows:
                if not has_credentials(stored) or camera_secrets.key_ids(stored) == {keyring.sealing_key_id}:
                    continue
                sealed = keyring.seal(keyring.open(stored))
                session.execute(update(table).where(table.scenario_uuid == scenario_uuid).values(camera_url=sealed))
                changed += 1
    return changed


def _camera_keys(arguments: argparse.Namespace, settings: DatabaseServiceSettings) -> int:
    if arguments.action == "generate":
        try:
            print(camera_secrets.generate_key(arguments.id))
        except ValueError as error:
            print(f"vap-admin: {error}", file=sys.stderr)
            return 2
        return 0
    keyring = settings.camera_keyring()
    if keyring.sealing_key_id is None:
        print("vap-admin: VAP_CAMERA_KEYS is not set", file=sys.stderr)
        return 2
    engine = make_engine(settings.database)
    try:
        with make_session_factory(engine)() as session:
            changed = reseal(session, keyring)
    finally:
        engine.dispose()
    print(f"{changed} stored camera URLs sealed with key {keyring.sealing_key_id!r}", file=sys.stderr)
    return 0


def _register(session: Session, arguments: argparse.Namespace) -> int:
    key = (os.environ.get(arguments.from_env, "") if arguments.from_env else sys.stdin.read()).strip()
    scopes = frozenset(Scope(value) for value in arguments.scope or DEFAULT_SCOPES)
    try:
        stored = register_key(session=session, key=key, tenant=arguments.tenant, scopes=scopes, name=arguments.name)
    except ValueError as error:
        print(f"vap-admin: {error}", file=sys.stderr)
        return 2
    print(f"key {key.split('_')[1]} {'registered' if stored else 'was registered already: unchanged'}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    settings = DatabaseServiceSettings()
    if arguments.area == "camera-keys":
        return _camera_keys(arguments, settings)
    if arguments.action == "generate":
        print(generate_key())
        return 0
    engine = make_engine(settings.database)
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
            elif arguments.action == "register":
                return _register(session, arguments)
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
