"""What a call has cost so far, as the application layer learns it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CallRecord:
    """Filled in by the use cases as a call goes: the trial it took (``trials_remaining``
    left on the token) and the transaction it was recorded as. The HTTP layer keeps
    it in the request's state, so every error answer reports both without
    each raise site carrying them."""

    trials_remaining: int | None = None
    transaction_id: str | None = None
