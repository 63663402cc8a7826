"""`facematch admin` commands for transaction data: client keys, image keys, secrets, purge.

A thin layer over :mod:`facematch.store.sealed`, :mod:`facematch.store.retention`
and :mod:`facematch.protocol.envelope`; registered on the ``admin`` group,
whose context object (``AdminContext``: ``settings()``, ``session()``) they use,
so ``--database-url`` and ``--data-dir`` apply to them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from facematch.commands.options import bundle_id_option

if TYPE_CHECKING:
    from facematch.store.vault import Vault


def _vault(admin_ctx: Any) -> Vault:
    from facematch.store.vault import VaultConfigError, vault_from_settings

    try:
        return vault_from_settings(admin_ctx.settings())
    except VaultConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("register-key")
@click.option(
    "--organisation",
    "-o",
    required=True,
    envvar="FACEMATCH_ADMIN_ORGANISATION",
    help="Name of the organisation.",
)
@click.argument("pem_file", type=click.File("rb"))
@click.pass_obj
def register_key(admin_ctx: Any, organisation: str, pem_file: Any) -> None:
    """Register the organisation's RSA public key (PEM, 4096 bits or more; '-' = stdin).

    Inquiry and fetch-images answers are encrypted for this key. Registering
    again replaces the previous key.
    """
    from facematch.protocol.envelope import (
        ClientKeyError,
        load_client_public_key,
        normalized_public_pem,
        public_key_fingerprint,
    )
    from facematch.store import repository

    try:
        key = load_client_public_key(pem_file.read())
    except ClientKeyError as exc:
        raise click.ClickException(f"{pem_file.name}: {exc}") from exc
    with admin_ctx.session() as session:
        org = repository.get_organisation(session, name=organisation)
        replaced = org.rsa_public_key_pem is not None
        org.rsa_public_key_pem = normalized_public_pem(key)
    click.echo(
        f"{'replaced' if replaced else 'registered'} RSA-{key.key_size} key for {organisation!r}; "
        f"SHA-256 fingerprint {public_key_fingerprint(key)}"
    )


@click.command("purge")
@click.option(
    "--dry-run",
    is_flag=True,
    envvar="FACEMATCH_ADMIN_DRY_RUN",
    help="Count what would be purged, delete nothing.",
)
@click.pass_obj
def purge(admin_ctx: Any, dry_run: bool) -> None:
    """Delete images and reference embeddings past each bundle's retention period,
    and close transactions left pending by calls that died as 'abandoned'.

    Transaction metadata stays for audit; see docs/transactions.md.
    """
    from datetime import timedelta

    from facematch.store.models import utcnow
    from facematch.store.retention import abandon_stale_pending, purge_expired

    settings = admin_ctx.settings()
    stale_after = timedelta(seconds=settings.request_timeout_s + settings.pending_grace_s)
    with admin_ctx.session() as session:
        report = purge_expired(session, dry_run=dry_run)
        abandoned = abandon_stale_pending(session, older_than=utcnow() - stale_after)
        if dry_run:
            session.rollback()
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} {report.transactions} transaction(s), {report.images} image(s)")
    verb = "would close" if dry_run else "closed"
    click.echo(f"{verb} {abandoned} stale pending transaction(s) as abandoned")


@click.command("new-image-key")
@click.option(
    "--key-id",
    default=None,
    envvar="FACEMATCH_ADMIN_KEY_ID",
    help="Key id (default: k<UTC timestamp>).",
)
def new_image_key(key_id: str | None) -> None:
    """Print a fresh 'key_id:base64' entry for FACEMATCH_IMAGE_KEYS."""
    from facematch.store.vault import VaultConfigError, new_key_spec

    try:
        click.echo(new_key_spec(key_id))
    except VaultConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("rotate-keys")
@click.pass_obj
def rotate_keys(admin_ctx: Any) -> None:
    """Re-encrypt stored images, reference descriptors and HMAC secrets under the first
    FACEMATCH_IMAGE_KEYS key.

    Commits batch by batch, so a live server's writers wait for one batch at most;
    a run stopped half-way leaves everything readable, and running it again
    finishes the job.
    """
    from facematch.store.sealed import key_usage, reseal_all
    from facematch.store.vault import VaultError

    vault = _vault(admin_ctx)
    with admin_ctx.session() as session:
        try:
            count = reseal_all(session, vault)
        except VaultError as exc:
            raise click.ClickException(f"cannot re-encrypt: {exc}") from exc
        usage = key_usage(session)
    click.echo(f"re-encrypted {count} item(s) under key {vault.primary_key_id!r}")
    for key_id, items in sorted(usage.items()):
        click.echo(f"  {key_id}: {items} image(s) and reference descriptor(s)")


@click.command("hmac-secret")
@bundle_id_option("Id of the bundle.")
@click.option(
    "--rotate",
    is_flag=True,
    envvar="FACEMATCH_ADMIN_ROTATE",
    help="Replace the secret with a new one.",
)
@click.pass_obj
def hmac_secret(admin_ctx: Any, bundle_id: int, rotate: bool) -> None:
    """Print the bundle's HMAC secret, which keys the `hmac` header of its responses.

    The client verifies responses with it (docs/transactions.md). A bundle
    without one gets one now; --rotate replaces it (clients must switch).
    """
    from facematch.store import repository
    from facematch.store.sealed import ensure_bundle_hmac_secret, rotate_bundle_hmac_secret
    from facematch.store.vault import VaultError

    vault = _vault(admin_ctx)
    with admin_ctx.session() as session:
        bundle = repository.get_bundle(session, bundle_id=bundle_id)
        try:
            if rotate:
                secret = rotate_bundle_hmac_secret(vault, bundle)
            else:
                secret = ensure_bundle_hmac_secret(session, vault, bundle)
        except VaultError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(secret)


COMMANDS = (register_key, purge, new_image_key, rotate_keys, hmac_secret)
"""Registered on the ``facematch admin`` group by :mod:`facematch.commands.admin`."""


def check_image_keys(settings: Any) -> None:
    """Refuse to start the server without usable image keys (clear message, exit 1).

    Run once before workers start, so a development key is created once and a
    misconfigured production server stops with one line instead of N tracebacks.
    """
    from facematch.store.vault import VaultConfigError, vault_from_settings

    try:
        vault_from_settings(settings)
    except VaultConfigError as exc:
        raise click.ClickException(str(exc)) from exc
