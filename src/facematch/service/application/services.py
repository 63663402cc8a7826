"""The parts of a running service, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from facematch.engine.protocols import Matcher
from facematch.service.application.demo import DemoService
from facematch.service.application.face_match import FaceMatchService
from facematch.service.application.tokens import TokenService
from facematch.service.application.transactions import TransactionQueries
from facematch.service.runtime.workpool import WorkPool
from facematch.settings import Settings
from facematch.store.vault import Vault


@dataclass(frozen=True)
class Services:
    """What the routes may use: settings, the shared parts and the use cases."""

    settings: Settings
    sessions: Callable[[], Session]
    vault: Vault
    matcher: Matcher
    pool: WorkPool
    face_match: FaceMatchService
    tokens: TokenService
    transactions: TransactionQueries
    demo: DemoService
