"""One map from whatever a pass raised to what Argora does about it, for every controller.

Each exception becomes a `Decision`: the reason shown in conditions and Events, whether the API server
can take a report now, whether a retry can help (then after the growing delay), and whether it is a
bug (logged with its traceback). Nothing is written after a failed read: the pass skeleton stops at
the first exception, so a decision never has to say what may still be written.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from argora_common.apiserver import api_message, is_transient
from argora_common.netbox import NetBoxRejectedError, NetBoxUnavailableError, NetBoxWriteForbiddenError


class BadInputError(Exception):
    """The resource asks for what cannot be done as things stand (a platform NetBox lacks, no NetBox
    cluster of that name): the user has to act. `reason` is machine-readable; the message says why."""

    def __init__(self, reason: str, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry = retry


class FailureKind(StrEnum):
    NETBOX_UNAVAILABLE = "netbox-unavailable"
    NETBOX_REJECTED = "netbox-rejected"
    KUBERNETES_UNAVAILABLE = "kubernetes-unavailable"
    BAD_INPUT = "bad-input"
    BUG = "bug"


@dataclass(frozen=True)
class Decision:
    kind: FailureKind
    reason: str  # condition reason and Event reason
    message: str
    # Worth another try after the growing delay; False: wait for a change of the resource or the resync.
    retry: bool
    # The API server can take a status and an Event now (not while it is the thing that failed).
    reportable: bool = True

    @property
    def netbox_unreachable(self) -> bool:
        """NetBox could not be read: the NetBoxReachable condition goes False as well as Ready."""
        return self.kind in {FailureKind.NETBOX_UNAVAILABLE, FailureKind.NETBOX_REJECTED} and (
            self.reason != "NetBoxWriteForbidden"
        )

    @property
    def is_bug(self) -> bool:
        return self.kind is FailureKind.BUG


def kubernetes_unavailable(error: BaseException) -> bool:
    """The API server could not be reached, timed out, or answered 408/429/5xx."""
    return isinstance(error, HTTPError) or (isinstance(error, ApiException) and is_transient(error))


def classify(error: BaseException, kept: str) -> Decision:
    """`kept` says what a failed pass leaves as it is (e.g. "existing objects are left as they are")."""
    if isinstance(error, NetBoxWriteForbiddenError):
        return Decision(
            FailureKind.NETBOX_REJECTED, "NetBoxWriteForbidden", f"the NetBox token may not write: {error}", True
        )
    if isinstance(error, NetBoxRejectedError):
        return Decision(FailureKind.NETBOX_REJECTED, "NetBoxRejected", f"{error}; {kept}", True)
    if isinstance(error, NetBoxUnavailableError):
        return Decision(FailureKind.NETBOX_UNAVAILABLE, "NetBoxUnavailable", f"{error}; {kept}", True)
    if isinstance(error, BadInputError):
        return Decision(FailureKind.BAD_INPUT, error.reason, str(error), error.retry)
    if kubernetes_unavailable(error):
        return Decision(
            FailureKind.KUBERNETES_UNAVAILABLE, "KubernetesUnavailable", f"Kubernetes API: {brief(error)}", True, False
        )
    if isinstance(error, ApiException):
        # A refusal at the level of the whole pass (RBAC, an admission policy): configuration to fix.
        message = f"the Kubernetes API refused a request: HTTP {error.status}: {api_message(error)}"
        return Decision(FailureKind.BAD_INPUT, "KubernetesRejected", message, True)
    return Decision(FailureKind.BUG, "InternalError", f"{type(error).__name__}: {error}", False)


def brief(error: BaseException) -> str:
    """A short description for a log line, never a response body."""
    return f"HTTP {error.status}" if isinstance(error, ApiException) else f"{type(error).__name__}: {error}"
