"""The one map from whatever a pass raised to what Argora does about it."""

import pytest
from urllib3 import HTTPConnectionPool
from urllib3.connection import HTTPConnection
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError

from argora_common.errors import BadInputError, Decision, FailureKind, classify
from argora_common.netbox import NetBoxRejectedError, NetBoxUnavailableError, NetBoxWriteForbiddenError
from tests.unit.memory_kube import api_error

KEPT = "existing objects are left as they are"
POOL = HTTPConnectionPool("kube.example", 6443)  # never connects: only named in the errors
REFUSED = NewConnectionError(HTTPConnection("kube.example", 6443), "Failed to establish a new connection: refused")


def test_netbox_unavailable_is_retried_reported_and_says_what_is_kept() -> None:
    decision = classify(NetBoxUnavailableError("GET /api/dcim/devices/: timed out"), KEPT)
    assert decision == Decision(
        FailureKind.NETBOX_UNAVAILABLE, "NetBoxUnavailable", f"GET /api/dcim/devices/: timed out; {KEPT}", True, True
    )
    assert decision.netbox_unreachable and not decision.is_bug


def test_netbox_rejecting_a_read_is_retried_and_counts_as_unreachable() -> None:
    decision = classify(NetBoxRejectedError("GET /api/dcim/devices/: HTTP 400 bad filter", 400), KEPT)
    assert (decision.kind, decision.reason, decision.retry, decision.reportable) == (
        FailureKind.NETBOX_REJECTED, "NetBoxRejected", True, True,
    )  # fmt: skip
    assert decision.message == f"GET /api/dcim/devices/: HTTP 400 bad filter; {KEPT}"
    assert decision.netbox_unreachable


def test_a_read_only_netbox_token_is_reported_but_netbox_was_reachable() -> None:
    decision = classify(NetBoxWriteForbiddenError("PATCH /api/dcim/interfaces/7/: HTTP 403", 403), KEPT)
    assert (decision.kind, decision.reason, decision.retry, decision.reportable) == (
        FailureKind.NETBOX_REJECTED, "NetBoxWriteForbidden", True, True,
    )  # fmt: skip
    assert decision.message == "the NetBox token may not write: PATCH /api/dcim/interfaces/7/: HTTP 403"
    assert not decision.netbox_unreachable


@pytest.mark.parametrize("retry", [True, False])
def test_bad_input_keeps_its_reason_message_and_retry(retry: bool) -> None:
    decision = classify(BadInputError("PlatformNotFound", "spec.platform: no platform 'x'", retry=retry), KEPT)
    assert decision == Decision(FailureKind.BAD_INPUT, "PlatformNotFound", "spec.platform: no platform 'x'", retry)
    assert decision.reportable and not decision.netbox_unreachable and not decision.is_bug


@pytest.mark.parametrize(
    "error",
    [
        api_error(503, "etcdserver: leader changed"),
        api_error(429, "too many requests"),
        api_error(0, "connection reset"),
        REFUSED,
        MaxRetryError(POOL, "/api/v1/secrets", REFUSED),
        ReadTimeoutError(POOL, "/api/v1/secrets", "Read timed out. (read timeout=10)"),
        ProtocolError("Connection aborted."),
    ],
    ids=["503", "429", "status-0", "refused", "max-retries", "read-timeout", "protocol"],
)
def test_kubernetes_unavailable_is_retried_but_not_reported(error: Exception) -> None:
    """The API server is the thing that failed: a status or an Event would fail the same way."""
    decision = classify(error, KEPT)
    assert (decision.kind, decision.reason, decision.retry, decision.reportable) == (
        FailureKind.KUBERNETES_UNAVAILABLE, "KubernetesUnavailable", True, False,
    )  # fmt: skip
    assert decision.message.startswith("Kubernetes API: ")
    assert not decision.netbox_unreachable and not decision.is_bug


def test_an_unavailable_api_server_is_described_briefly_never_by_its_response_body() -> None:
    assert classify(api_error(503, "a long body with details"), KEPT).message == "Kubernetes API: HTTP 503"


@pytest.mark.parametrize("status", [403, 422])
def test_a_kubernetes_refusal_is_reported_with_the_servers_words_and_retried(status: int) -> None:
    error = api_error(status, 'secrets "bmc" is forbidden: User "argora" cannot get resource "secrets"')
    decision = classify(error, KEPT)
    assert (decision.kind, decision.reason, decision.retry, decision.reportable) == (
        FailureKind.BAD_INPUT, "KubernetesRejected", True, True,
    )  # fmt: skip
    assert decision.message == (
        f"the Kubernetes API refused a request: HTTP {status}: "
        'secrets "bmc" is forbidden: User "argora" cannot get resource "secrets"'
    )
    assert not decision.netbox_unreachable


@pytest.mark.parametrize("error", [KeyError("spec"), ValueError("bad"), AttributeError("'NoneType' has no 'id'")])
def test_anything_else_is_a_bug_reported_and_not_retried(error: Exception) -> None:
    decision = classify(error, KEPT)
    assert (decision.kind, decision.reason, decision.retry, decision.reportable) == (
        FailureKind.BUG, "InternalError", False, True,
    )  # fmt: skip
    assert decision.is_bug and not decision.netbox_unreachable
    assert decision.message == f"{type(error).__name__}: {error}"
