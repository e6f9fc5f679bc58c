"""Which Secrets serve as BMC credentials: only those that opted in, unless the check is turned off."""

from __future__ import annotations

import base64
from typing import Any, cast

from argora_common.credentials import OPT_IN_LABEL, BMCCredentials, CredentialsProblem, credentials_for
from argora_common.kube import Kind, Kube
from argora_common.settings import SecretReference


def secret(name: str, labels: dict[str, str]) -> dict[str, Any]:
    data = {key: base64.b64encode(value.encode()).decode() for key, value in (("username", "u"), ("password", "p"))}
    return {"metadata": {"namespace": "team", "name": name, "labels": labels}, "data": data}


class Secrets:
    """What the API server holds: Secrets by (namespace, name)."""

    def __init__(self, *secrets: dict[str, Any]) -> None:
        self.secrets = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in secrets}

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.secrets.get((str(namespace), name))


KUBE = cast(Kube, Secrets(
    secret("opted-in", {OPT_IN_LABEL: "true"}), secret("plain", {}), secret("other-value", {OPT_IN_LABEL: "yes"}),
    secret("default", {}),
))  # fmt: skip
DEFAULT = SecretReference(namespace="team", name="default")


def outcome(found: BMCCredentials | CredentialsProblem) -> str:
    return found.reason if isinstance(found, CredentialsProblem) else found.username


def test_a_named_secret_is_used_only_when_it_opted_in_and_the_default_needs_no_label() -> None:
    wanted = [("team", "opted-in"), ("team", "plain"), ("team", "other-value"), ("team", None), ("team", "gone")]
    found = credentials_for(KUBE, wanted, DEFAULT, "bmcCredentialsRef")
    assert [outcome(f) for f in found] == [
        "u", "CredentialsNotOptedIn", "CredentialsNotOptedIn", "u", "CredentialsUnavailable"
    ]  # fmt: skip
    problem = found[1]
    assert isinstance(problem, CredentialsProblem)
    assert problem.message == (
        f'Secret team/plain is not labelled {OPT_IN_LABEL}: "true", which a Secret needs to be used as BMC credentials'
    )


def test_the_check_can_be_turned_off() -> None:
    found = credentials_for(KUBE, [("team", "plain")], None, "bmcCredentialsRef", opt_in=False)
    assert [outcome(f) for f in found] == ["u"]
