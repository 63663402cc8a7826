"""A client RSA-4096 key pair shared by the tests (generating one takes seconds)."""

from __future__ import annotations

from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@cache
def client_private_key() -> rsa.RSAPrivateKey:
    """One RSA-4096 private key per test session, like a client's ``private.pem``."""
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


@cache
def other_client_private_key() -> rsa.RSAPrivateKey:
    """A second organisation's key pair, for cross-organisation tests."""
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


def public_pem(private_key: rsa.RSAPrivateKey) -> str:
    """What the client registers: the SubjectPublicKeyInfo PEM (``openssl rsa -pubout``)."""
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
