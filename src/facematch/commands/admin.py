"""`facematch admin ...`: organisations, users, OAuth applications, bundles, tokens.

A thin layer over :mod:`facematch.store.repository`. Secrets (client secrets,
bundle keys, generated passwords) are printed once, when created; listings
never show them. Every command migrates the schema first, so it works on a
fresh database. Errors go to stderr with exit status 1.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from facematch.commands.options import bundle_id_option
from facematch.commands.transactions import COMMANDS as TRANSACTION_COMMANDS
from facematch.settings import MAX_TOKEN_LIFETIME_S

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from facematch.settings import Settings


@dataclass
class AdminContext:
    database_url: str | None
    data_dir: Path | None

    def settings(self) -> Settings:
        from facematch.settings import Settings, get_settings

        overrides: dict[str, Any] = {}
        if self.database_url:
            overrides["database_url"] = self.database_url
        if self.data_dir:
            overrides["data_dir"] = self.data_dir
        return Settings(**overrides) if overrides else get_settings()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on the migrated database, committed on success; store errors → stderr."""
        from facematch.store import db, repository

        engine = db.create_db_engine(db.database_url(self.settings()))
        try:
            db.migrate(engine)
            with db.session_scope(db.create_session_factory(engine)) as session:
                yield session
        except (repository.NotFoundError, repository.AlreadyExistsError, ValueError) as exc:
            raise click.ClickException(str(exc).strip("'\"")) from exc
        except db.StoreError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            engine.dispose()


pass_admin = click.make_pass_decorator(AdminContext)


def _emit(values: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    width = max(len(key) for key in values)
    for key, value in values.items():
        click.echo(f"{key.ljust(width)}  {value}")


def _organisation(session: Session, name: str) -> Any:
    from facematch.store import repository

    return repository.get_organisation(session, name=name)


@click.group()
@click.option(
    "--database-url",
    envvar="FACEMATCH_DATABASE_URL",
    help="SQLAlchemy database URL (default: SQLite file in --data-dir).",
)
@click.option(
    "--data-dir",
    envvar="FACEMATCH_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the default SQLite database.",
)
@click.pass_context
def admin(ctx: click.Context, database_url: str | None, data_dir: Path | None) -> None:
    """Manage organisations, users, OAuth applications, bundles and tokens."""
    ctx.obj = AdminContext(database_url=database_url, data_dir=data_dir)


ORG_OPTION = click.option(
    "--organisation",
    "-o",
    "organisation",
    required=True,
    envvar="FACEMATCH_ADMIN_ORGANISATION",
    help="Name of the organisation.",
)
JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, envvar="FACEMATCH_ADMIN_JSON", help="Print JSON."
)


@admin.command("create-org")
@click.argument("name")
@pass_admin
def create_org(admin_ctx: AdminContext, name: str) -> None:
    """Create an organisation (a client company) called NAME."""
    from facematch.store import repository

    with admin_ctx.session() as session:
        org = repository.create_organisation(session, name=name)
        click.echo(f"organisation {org.name!r} created (id {org.id})")


@admin.command("create-user")
@ORG_OPTION
@click.option(
    "--username",
    "-u",
    required=True,
    envvar="FACEMATCH_ADMIN_USERNAME",
    help="Login name (unique across organisations).",
)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="FACEMATCH_ADMIN_PASSWORD",
    help="Password (prompted when not given).",
)
@pass_admin
def create_user(admin_ctx: AdminContext, organisation: str, username: str, password: str) -> None:
    """Create a user of an organisation (the username/password of the token request)."""
    from facematch.store import repository

    if not password:
        raise click.ClickException("the password must not be empty")
    with admin_ctx.session() as session:
        org = _organisation(session, organisation)
        user = repository.create_user(
            session, organisation=org, username=username, password=password
        )
        click.echo(f"user {user.username!r} created in {org.name!r} (id {user.id})")


def _bundle_options(function: Any) -> Any:
    options = [
        click.option(
            "--services",
            default="face_match",
            show_default=True,
            envvar="FACEMATCH_ADMIN_SERVICES",
            help="Comma-separated services the bundle enables.",
        ),
        click.option(
            "--quota",
            type=click.IntRange(min=0),
            default=None,
            envvar="FACEMATCH_ADMIN_QUOTA",
            help="Transactions allowed (default: unlimited).",
        ),
        click.option(
            "--token-trials",
            type=click.IntRange(min=1),
            default=None,
            envvar="FACEMATCH_TOKEN_TRIALS",
            help="Calls one access token allows (default: settings.token_trials).",
        ),
        click.option(
            "--token-lifetime-s",
            type=click.IntRange(min=1, max=MAX_TOKEN_LIFETIME_S),
            default=None,
            envvar="FACEMATCH_TOKEN_LIFETIME_S",
            help=f"Access-token lifetime in seconds, at most {MAX_TOKEN_LIFETIME_S} "
            "(default: settings).",
        ),
        click.option(
            "--retention-days",
            type=click.IntRange(min=0),
            default=30,
            show_default=True,
            envvar="FACEMATCH_ADMIN_RETENTION_DAYS",
            help="Days stored images are kept.",
        ),
        click.option(
            "--store-images/--no-store-images",
            default=True,
            show_default=True,
            envvar="FACEMATCH_ADMIN_STORE_IMAGES",
            help="Keep the (encrypted) input images of transactions.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _create_bundle(session: Session, settings: Settings, org: Any, **options: Any) -> Any:
    from facematch.store import repository
    from facematch.store.models import SERVICES
    from facematch.store.vault import VaultConfigError, vault_from_settings

    # The bundle's HMAC secret is made with the bundle when this shell has the image
    # keys; an admin host without them (production keys live on the servers) leaves
    # it to the opening commit of the bundle's first match.
    try:
        vault = vault_from_settings(settings)
    except VaultConfigError:
        vault = None

    services = [s.strip() for s in options["services"].split(",") if s.strip()]
    unknown = sorted(set(services) - set(SERVICES))
    if unknown:
        raise click.ClickException(f"unknown service(s): {', '.join(unknown)}")
    return repository.create_bundle(
        session,
        organisation=org,
        enabled_services=services,
        quota=options["quota"],
        token_trials=options["token_trials"] or settings.token_trials,
        token_lifetime_s=options["token_lifetime_s"] or settings.token_lifetime_s,
        store_images=options["store_images"],
        retention_days=options["retention_days"],
        vault=vault,
    )


@admin.command("create-bundle")
@ORG_OPTION
@_bundle_options
@JSON_OPTION
@pass_admin
def create_bundle(
    admin_ctx: AdminContext, organisation: str, as_json: bool, **options: Any
) -> None:
    """Create a bundle and print its key (shown this once only)."""
    with admin_ctx.session() as session:
        org = _organisation(session, organisation)
        bundle, key = _create_bundle(session, admin_ctx.settings(), org, **options)
        _emit({"bundle_id": bundle.id, "bundle_key": key}, as_json=as_json)


@admin.command("create-app")
@ORG_OPTION
@bundle_id_option("Bundle whose trials/lifetime the app's tokens get.")
@click.option(
    "--name",
    default="default",
    show_default=True,
    envvar="FACEMATCH_ADMIN_APP_NAME",
    help="A label for the application.",
)
@JSON_OPTION
@pass_admin
def create_app_command(
    admin_ctx: AdminContext, organisation: str, bundle_id: int, name: str, as_json: bool
) -> None:
    """Create an OAuth application; prints client_id and client_secret (shown once)."""
    from facematch.store import repository

    with admin_ctx.session() as session:
        org = _organisation(session, organisation)
        bundle = repository.get_bundle(session, bundle_id=bundle_id)
        app, secret = repository.create_application(
            session, organisation=org, bundle=bundle, name=name
        )
        _emit({"client_id": app.client_id, "client_secret": secret}, as_json=as_json)


@admin.command("list")
@click.argument("kind", type=click.Choice(["orgs", "users", "apps", "bundles"]))
@click.option(
    "--organisation",
    "-o",
    default=None,
    envvar="FACEMATCH_ADMIN_ORGANISATION",
    help="Only rows of this organisation.",
)
@JSON_OPTION
@pass_admin
def list_command(
    admin_ctx: AdminContext, kind: str, organisation: str | None, as_json: bool
) -> None:
    """List organisations, users, applications or bundles (never their secrets)."""
    from facematch.store import repository

    with admin_ctx.session() as session:
        org_id = _organisation(session, organisation).id if organisation else None
        names = {o.id: o.name for o in repository.list_organisations(session)}
        rows: list[dict[str, Any]]
        if kind == "orgs":
            rows = [
                {"id": o.id, "name": o.name, "public_key": "yes" if o.rsa_public_key_pem else "no"}
                for o in repository.list_organisations(session)
                if org_id is None or o.id == org_id
            ]
        elif kind == "users":
            rows = [
                {
                    "id": u.id,
                    "organisation": names[u.organisation_id],
                    "username": u.username,
                    "active": u.active,
                }
                for u in repository.list_users(session, organisation_id=org_id)
            ]
        elif kind == "apps":
            rows = [
                {
                    "id": a.id,
                    "organisation": names[a.organisation_id],
                    "name": a.name,
                    "client_id": a.client_id,
                    "bundle_id": a.bundle_id,
                    "active": a.active,
                }
                for a in repository.list_applications(session, organisation_id=org_id)
            ]
        else:
            rows = [
                {
                    "id": b.id,
                    "organisation": names[b.organisation_id],
                    "key_prefix": b.key_prefix + "…",
                    "services": ",".join(b.enabled_services),
                    "quota": "unlimited" if b.quota_remaining is None else b.quota_remaining,
                    "token_trials": b.token_trials,
                    "token_lifetime_s": b.token_lifetime_s,
                    "store_images": b.store_images,
                    "retention_days": b.retention_days,
                    "active": b.active,
                }
                for b in repository.list_bundles(session, organisation_id=org_id)
            ]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        click.echo(f"no {kind}")
    else:
        header = list(rows[0])
        widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in header}
        click.echo("  ".join(h.ljust(widths[h]) for h in header))
        for row in rows:
            click.echo("  ".join(str(row[h]).ljust(widths[h]) for h in header))


@admin.command("recharge")
@bundle_id_option("The bundle to recharge.")
@click.option(
    "--add",
    type=click.IntRange(min=1),
    default=None,
    envvar="FACEMATCH_ADMIN_RECHARGE_ADD",
    help="Add this many transactions.",
)
@click.option(
    "--set",
    "set_to",
    type=click.IntRange(min=0),
    default=None,
    envvar="FACEMATCH_ADMIN_RECHARGE_SET",
    help="Set the remaining transactions.",
)
@click.option(
    "--unlimited",
    is_flag=True,
    envvar="FACEMATCH_ADMIN_RECHARGE_UNLIMITED",
    help="Remove the quota.",
)
@pass_admin
def recharge(
    admin_ctx: AdminContext, bundle_id: int, add: int | None, set_to: int | None, unlimited: bool
) -> None:
    """Change a bundle's transaction quota (exactly one of --add, --set, --unlimited)."""
    from facematch.store import repository

    if [add is not None, set_to is not None, unlimited].count(True) != 1:
        raise click.UsageError("give exactly one of --add, --set, --unlimited")
    with admin_ctx.session() as session:
        bundle = repository.recharge_bundle(
            session, bundle_id=bundle_id, add=add, set_to=set_to, unlimited=unlimited
        )
        quota = "unlimited" if bundle.quota_remaining is None else bundle.quota_remaining
        click.echo(f"bundle {bundle.id}: quota {quota}")


@admin.command("revoke-tokens")
@click.option(
    "--organisation",
    "-o",
    default=None,
    envvar="FACEMATCH_ADMIN_ORGANISATION",
    help="Revoke the tokens of this organisation.",
)
@click.option(
    "--username",
    "-u",
    default=None,
    envvar="FACEMATCH_ADMIN_USERNAME",
    help="Revoke the tokens of this user.",
)
@click.option(
    "--client-id",
    default=None,
    envvar="FACEMATCH_ADMIN_CLIENT_ID",
    help="Revoke the tokens issued to this application.",
)
@pass_admin
def revoke_tokens(
    admin_ctx: AdminContext, organisation: str | None, username: str | None, client_id: str | None
) -> None:
    """Revoke live access and refresh tokens (all filters given must match)."""
    from facematch.store import repository

    if not (organisation or username or client_id):
        raise click.UsageError("give at least one of --organisation, --username, --client-id")
    with admin_ctx.session() as session:
        count = repository.revoke_tokens(
            session,
            organisation_id=_organisation(session, organisation).id if organisation else None,
            user_id=repository.get_user(session, username=username).id if username else None,
            application_id=(
                repository.get_application(session, client_id=client_id).id if client_id else None
            ),
        )
        click.echo(f"{count} token(s) revoked")


@admin.command("deactivate-user")
@click.option(
    "--username",
    "-u",
    required=True,
    envvar="FACEMATCH_ADMIN_USERNAME",
    help="The user to deactivate.",
)
@pass_admin
def deactivate_user(admin_ctx: AdminContext, username: str) -> None:
    """Deactivate a user: its live tokens are revoked at once and it gets no new ones."""
    from facematch.store import repository

    with admin_ctx.session() as session:
        user, count = repository.deactivate_user(session, username=username)
        click.echo(f"user {user.username!r} deactivated; {count} token(s) revoked")


@admin.command("deactivate-app")
@click.option(
    "--client-id",
    required=True,
    envvar="FACEMATCH_ADMIN_CLIENT_ID",
    help="The OAuth application to deactivate.",
)
@pass_admin
def deactivate_app(admin_ctx: AdminContext, client_id: str) -> None:
    """Deactivate an OAuth application: the tokens it issued are revoked at once and it
    issues no new ones."""
    from facematch.store import repository

    with admin_ctx.session() as session:
        app, count = repository.deactivate_application(session, client_id=client_id)
        click.echo(f"application {app.client_id!r} deactivated; {count} token(s) revoked")


@admin.command("rotate-bundle-key")
@bundle_id_option("The bundle whose key to replace.")
@JSON_OPTION
@pass_admin
def rotate_bundle_key(admin_ctx: AdminContext, bundle_id: int, as_json: bool) -> None:
    """Give a bundle a new key (printed once); the old key stops working at once."""
    from facematch.store import repository

    with admin_ctx.session() as session:
        bundle, key = repository.rotate_bundle_key(session, bundle_id=bundle_id)
        _emit({"bundle_id": bundle.id, "bundle_key": key}, as_json=as_json)


@admin.command("bootstrap")
@ORG_OPTION
@click.option(
    "--username",
    "-u",
    required=True,
    envvar="FACEMATCH_ADMIN_USERNAME",
    help="Login name of the first user.",
)
@click.option(
    "--password",
    default=None,
    envvar="FACEMATCH_ADMIN_PASSWORD",
    help="Password of the first user (default: a generated one, printed once).",
)
@_bundle_options
@JSON_OPTION
@pass_admin
def bootstrap(
    admin_ctx: AdminContext,
    organisation: str,
    username: str,
    password: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Create an organisation with a user, a bundle and an OAuth application, and print
    everything a first client needs (secrets shown this once only)."""
    from facematch.store import repository

    password = password or secrets.token_urlsafe(12)
    settings = admin_ctx.settings()
    with admin_ctx.session() as session:
        org = repository.create_organisation(session, name=organisation)
        repository.create_user(session, organisation=org, username=username, password=password)
        bundle, key = _create_bundle(session, settings, org, **options)
        app, secret = repository.create_application(
            session, organisation=org, bundle=bundle, name="default"
        )
    values = {
        "organisation": organisation,
        "username": username,
        "password": password,
        "client_id": app.client_id,
        "client_secret": secret,
        "bundle_id": bundle.id,
        "bundle_key": key,
    }
    _emit(values, as_json=as_json)
    if not as_json:
        base = f"http://{settings.host}:{settings.port}"
        click.echo("\nGet a token:")
        click.echo(
            f"  curl -s -X POST {base}/api/o/token/ -d grant_type=password "
            f"-d username={username} -d password=… -d client_id={app.client_id} "
            f"-d client_secret=…"
        )


# Transaction data (issue 5): register-key, purge, new-image-key, rotate-keys, hmac-secret.
for _command in TRANSACTION_COMMANDS:
    admin.add_command(_command)
