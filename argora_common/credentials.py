"""BMC credentials from Kubernetes Secrets, in the original operator's keys or the plain ones.

Whoever may create a ClusterImport or annotate a Cluster names the Secret; that must not let them copy
any Secret of their namespace into cluster-scoped BMCSecrets. So a Secret a resource names is used only
when it opted in with the label `argora.cloud.sap/bmc-credentials: "true"` (ARGORA_CREDENTIALS_OPT_IN,
on by default). The default Secret (ARGORA_DEFAULT_BMC_CREDENTIALS) was chosen by the operator's
installer and needs no label.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, SecretStr

from argora_common.kube import ARGORA_DOMAIN, SECRET, Kube
from argora_common.names import is_object_name
from argora_common.settings import SecretReference

# (user key, password key): the original Argora operator's names first.
KEY_PAIRS = (("bmcUser", "bmcPassword"), ("username", "password"))


OPT_IN_LABEL = f"{ARGORA_DOMAIN}/bmc-credentials"


class BMCCredentials(BaseModel):
    username: str
    password: SecretStr


class CredentialsProblem(BaseModel):
    """Why there are no credentials: the devices that needed them get this reason and message."""

    reason: str  # CredentialsUnavailable, CredentialsNotOptedIn or AmbiguousCredentials
    message: str


class CredentialsError(Exception):
    """The Secret is missing or unusable; the message names it and what is wrong, never its values."""

    def __init__(self, message: str, reason: str = "CredentialsUnavailable") -> None:
        super().__init__(message)
        self.reason = reason


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


def read_credentials(kube: Kube, namespace: str, name: str, *, opted_in_only: bool = False) -> BMCCredentials:
    if not is_object_name(name):
        # A name like `../../other/secrets/x` would read another namespace's Secret: never sent.
        raise CredentialsError(f"{name[:100]!r} is not a Secret name", reason="InvalidCredentialsRef")
    try:
        secret = kube.get(SECRET, name, namespace)
    except ApiException as error:
        if error.status == 403:
            raise CredentialsError(f"Secret {namespace}/{name}: not allowed to read it") from error
        raise
    if secret is None:
        raise CredentialsError(f"Secret {namespace}/{name} not found")
    found = (secret["metadata"].get("namespace"), secret["metadata"].get("name"))
    if found != (namespace, name):
        raise CredentialsError(
            f"asked for Secret {namespace}/{name}, got {found[0]}/{found[1]}", reason="InvalidCredentialsRef"
        )
    if opted_in_only and ((secret["metadata"].get("labels") or {}).get(OPT_IN_LABEL)) != "true":
        raise CredentialsError(
            f'Secret {namespace}/{name} is not labelled {OPT_IN_LABEL}: "true", which a Secret needs to be used '
            f"as BMC credentials",
            reason="CredentialsNotOptedIn",
        )
    return credentials_from_secret(secret)


def credentials_for(
    kube: Kube,
    wanted: Sequence[tuple[str, str | None]],
    default: SecretReference | None,
    named_by: str,
    *,
    opt_in: bool = True,
) -> list[BMCCredentials | CredentialsProblem]:
    """Per (namespace, Secret name or None) the credentials, else the default Secret's, or why there are
    none; `named_by` says where a resource names its Secret; `opt_in`: a named Secret must carry the
    opt-in label. Each Secret is read once."""
    read: dict[tuple[str, str], BMCCredentials | CredentialsProblem] = {}
    result: list[BMCCredentials | CredentialsProblem] = []
    for namespace, name in wanted:
        if name is not None:
            key = (namespace, name)
        elif default is not None:
            key = (default.namespace, default.name)
        else:
            message = f"no {named_by} and no default (ARGORA_DEFAULT_BMC_CREDENTIALS)"
            result.append(CredentialsProblem(reason="CredentialsUnavailable", message=message))
            continue
        if key not in read:
            try:
                read[key] = read_credentials(kube, *key, opted_in_only=opt_in and name is not None)
            except CredentialsError as error:
                read[key] = CredentialsProblem(reason=error.reason, message=str(error))
        result.append(read[key])
    return result
