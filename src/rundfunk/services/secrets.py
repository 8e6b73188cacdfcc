"""Secrets at rest (Fernet) and credentials at the door (argon2, hashed API tokens)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

_hasher = PasswordHasher()
TOKEN_PREFIX = "rf_"


class SecretBox:
    """Encrypts channel credentials with a key derived from ``RUNDFUNK_SECRET_KEY``."""

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, data: Mapping[str, object]) -> str:
        return self._fernet.encrypt(json.dumps(dict(data)).encode()).decode()

    def open(self, token: str) -> dict[str, object]:
        try:
            value = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise ValueError("credentials cannot be decrypted: wrong RUNDFUNK_SECRET_KEY?") from exc
        assert isinstance(value, dict)
        return value


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_api_token(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()
