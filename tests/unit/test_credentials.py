"""Which Secrets serve as BMC credentials: only those that opted in, unless the check is turned off."""

from __future__ import annotations

import base64
from typing import Any, cast

import pytest

from argora_common.credentials import (
    OPT_IN_LABEL,
    BMCCredentials,
    CredentialsError,
    CredentialsProblem,
    credentials_for,
    read_credentials,
)
from argora_common.kube import SECRET, Kind, Kube
from argora_common.settings import SecretReference
from tests.unit.memory_kube import MemoryKube


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


@pytest.mark.parametrize("name", ["../../other/secrets/bmc", "..", ".", "a/b", "a%2Fb", "Upper", ""])
def test_a_secret_name_that_is_no_object_name_is_refused_before_any_request(name: str) -> None:
    kube = MemoryKube("argora-test")
    with pytest.raises(CredentialsError) as refused:
        read_credentials(kube, "tenant", name)
    assert refused.value.reason == "InvalidCredentialsRef"
    assert kube.writes == []


@pytest.mark.parametrize("segment", ["..", "../x", "a/b", "a%2Fb", "a?b"])
def test_a_path_is_never_built_from_something_that_is_no_object_name(segment: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes object name"):
        SECRET.path("ns", segment)
    with pytest.raises(ValueError, match="not a Kubernetes object name"):
        SECRET.path(segment, "name")
