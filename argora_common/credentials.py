"""BMC credentials from Kubernetes Secrets, in the original operator's keys or the plain ones."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, SecretStr

from argora_common.kube import SECRET, Kube
from argora_common.settings import SecretReference

# (user key, password key): the original Argora operator's names first.
KEY_PAIRS = (("bmcUser", "bmcPassword"), ("username", "password"))


class BMCCredentials(BaseModel):
    username: str
    password: SecretStr


class CredentialsError(Exception):
    """The Secret is missing or unusable; the message names it and what is wrong, never its values."""


def credentials_from_secret(secret: dict[str, Any]) -> BMCCredentials:
    name = f"{secret['metadata'].get('namespace')}/{secret['metadata']['name']}"
    data = secret.get("data") or {}
    for user_key, password_key in KEY_PAIRS:
        if user_key in data and password_key in data:
            try:
                username = base64.b64decode(data[user_key]).decode()
                password = base64.b64decode(data[password_key]).decode()
            except (binascii.Error, UnicodeDecodeError) as error:
                raise CredentialsError(f"Secret {name}: {user_key}/{password_key} are not UTF-8 text") from error
            if not username or not password:
                raise CredentialsError(f"Secret {name}: {user_key} or {password_key} is empty")
            return BMCCredentials(username=username, password=SecretStr(password))
    raise CredentialsError(f"Secret {name} has neither bmcUser/bmcPassword nor username/password")


def read_credentials(kube: Kube, namespace: str, name: str) -> BMCCredentials:
    try:
        secret = kube.get(SECRET, name, namespace)
    except ApiException as error:
        if error.status == 403:
            raise CredentialsError(f"Secret {namespace}/{name}: not allowed to read it") from error
        raise
    if secret is None:
        raise CredentialsError(f"Secret {namespace}/{name} not found")
    return credentials_from_secret(secret)


def credentials_for(
    kube: Kube, wanted: Sequence[tuple[str, str | None]], default: SecretReference | None, named_by: str
) -> list[BMCCredentials | str]:
    """Per (namespace, Secret name or None) the credentials, else the default Secret's, or why there are
    none; `named_by` says where a resource names its Secret. Each Secret is read once."""
    read: dict[tuple[str, str], BMCCredentials | str] = {}
    result: list[BMCCredentials | str] = []
    for namespace, name in wanted:
        if name is not None:
            key = (namespace, name)
        elif default is not None:
            key = (default.namespace, default.name)
        else:
            result.append(f"no {named_by} and no default (ARGORA_DEFAULT_BMC_CREDENTIALS)")
            continue
        if key not in read:
            try:
                read[key] = read_credentials(kube, *key)
            except CredentialsError as error:
                read[key] = str(error)
        result.append(read[key])
    return result
