"""NetBox's API token: read from a value or a file that rotation swaps, and sent in the header its version wants."""

from __future__ import annotations

import threading
from pathlib import Path

import requests
from pydantic import SecretStr


class RotatingSecret:
    """A secret given as a value or as a file that is re-read whenever it changes on disk.

    A Kubernetes Secret mounted as a file is swapped atomically on rotation, so comparing the file's
    mtime and inode before each use picks up the new value without a restart.
    """

    def __init__(self, value: SecretStr | None, file: Path | None) -> None:
        self._value = value.get_secret_value().strip() if value is not None else None
        self._file = file
        self._file_stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def get(self) -> str:
        if self._file is None:
            assert self._value is not None
            return self._value
        with self._lock:
            stat = self._file.stat()
            stamp = (stat.st_mtime_ns, stat.st_ino)
            if stamp != self._file_stamp:
                self._value = self._file.read_text().strip()
                self._file_stamp = stamp
            assert self._value is not None
            return self._value


class TokenAuth(requests.auth.AuthBase):
    """Sets NetBox's Authorization header from the token, re-read from its file when that changes."""

    def __init__(self, token: SecretStr | None, token_file: Path | None) -> None:
        self._token = RotatingSecret(token, token_file)

    def current_token(self) -> str:
        return self._token.get()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = authorization_header(self.current_token())
        return request


def authorization_header(token: str) -> str:
    """v2 tokens (`nbt_<key>.<secret>`, NetBox >= 4.5) are Bearer tokens; v1 keys use `Token`."""
    return f"Bearer {token}" if token.startswith("nbt_") else f"Token {token}"
