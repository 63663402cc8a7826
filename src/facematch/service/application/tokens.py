"""Access tokens: finding the one a request presents, and issuing them (OAuth grants)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from facematch.service.errors import (
    OAuthInvalidClient,
    OAuthInvalidGrant,
    OAuthInvalidRequest,
    OAuthUnsupportedGrantType,
    TokenExpired,
    TokenInvalid,
)
from facematch.store import repository
from facematch.store.models import utcnow
from facematch.store.views import TokenRef

GRANT_TYPES = ("password", "refresh_token")


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in_s: int
    scope: str
    refresh_token: str


class TokenService:
    """Token lookups for the service endpoints and the OAuth 2.0 grants (RFC 6749)."""

    def __init__(self, *, sessions: Callable[[], Session], refresh_lifetime_s: int) -> None:
        self.sessions = sessions
        self.refresh_lifetime_s = refresh_lifetime_s

    def presented(self, access_token: str) -> TokenRef:
        """The token ``access_token`` names; :class:`TokenInvalid` when it is unknown,
        revoked, or its user or application is inactive."""
        with self.sessions() as session:
            row = repository.find_token(session, access_token=access_token)
            if row is None or row.revoked_at is not None:
                raise TokenInvalid()
            return TokenRef.of(row)

    @staticmethod
    def live_check(token: TokenRef) -> TokenRef:
        """``token`` unless it has expired (:class:`TokenExpired`): the one expiry rule
        of the endpoints that do not take a trial."""
        if token.expires_at <= utcnow():
            raise TokenExpired()
        return token

    def grant(
        self, form: Mapping[str, str], *, client: tuple[str, str] | None = None
    ) -> IssuedTokens:
        """The password or refresh-token grant; ``client`` is (id, secret) from HTTP
        Basic, else the form's ``client_id`` / ``client_secret``. Password checks
        are slow on purpose: call it off the event loop."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthInvalidRequest()
        if grant_type not in GRANT_TYPES:
            raise OAuthUnsupportedGrantType()
        client_id, client_secret = client or (form.get("client_id"), form.get("client_secret"))
        if not client_id or not client_secret:
            raise OAuthInvalidClient()
        with self.sessions() as session:
            application = repository.authenticate_application(
                session, client_id=client_id, client_secret=client_secret
            )
            if application is None:
                raise OAuthInvalidClient()
            if grant_type == "password":
                username, password = form.get("username"), form.get("password")
                if not username or password is None:
                    raise OAuthInvalidRequest()
                user = repository.authenticate_user(session, username=username, password=password)
                if user is None or user.organisation_id != application.organisation_id:
                    raise OAuthInvalidGrant()
            else:
                refresh_token = form.get("refresh_token")
                if not refresh_token:
                    raise OAuthInvalidRequest()
                old = repository.redeem_refresh_token(
                    session, refresh_token=refresh_token, application=application
                )
                user = repository.get_active_user(session, user_id=old.user_id) if old else None
                if user is None:
                    session.rollback()
                    raise OAuthInvalidGrant()
            issued = repository.issue_token(
                session,
                user=user,
                application=application,
                refresh_lifetime_s=self.refresh_lifetime_s,
            )
            session.commit()
            return IssuedTokens(
                access_token=issued.access_token,
                expires_in_s=issued.expires_in_s,
                scope=issued.row.scope,
                refresh_token=issued.refresh_token,
            )
