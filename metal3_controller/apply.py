"""Converge a Cluster's namespace to a plan: apply what differs, report drift, prune only on opt-in."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from argora_common.converge import ConvergeResult, DeviceConverger, unowned
from argora_common.crds import DeviceProblem
from argora_common.kube import SECRET, Kube, Owner, WriteOutcome, is_ignored
from metal3_controller.desired import (
    BARE_METAL_HOST,
    DesiredHost,
    Plan,
    keep_registered,
    network_secret_name,
    registration_drift,
    secret_name,
)


@dataclass(frozen=True)
class PrunePolicy:
    enabled: bool
    cap: int | None


def references(host: Mapping[str, Any] | None, secret_name: str) -> bool:
    """Whether a host names the Secret as its credentials or its networkData."""
    spec = (host or {}).get("spec") or {}
    return secret_name in ((spec.get("bmc") or {}).get("credentialsName"), (spec.get("networkData") or {}).get("name"))


class Converger(DeviceConverger[ConvergeResult]):
    """One pass over one Cluster's hosts and Secrets."""

    def __init__(
        self, kube: Kube, owner: Owner, label_prefix: str, *, keep_certificate_verification: bool = True
    ) -> None:
        super().__init__(kube, owner, label_prefix, ConvergeResult())
        self.keep_certificate_verification = keep_certificate_verification
        self.live_secrets: Mapping[str, dict[str, Any]] = {}

    def converge(self, plan: Plan, prune: PrunePolicy, scope: Collection[int] | None = None) -> ConvergeResult:
        """Every host of the plan, or only those of the devices in `scope` (a pass on a delta read: the
        others are as written before); the prune looks at every host either way."""
        namespace = self.owner.namespace
        hosts = plan.hosts if scope is None else [host for host in plan.hosts if host.device_id in scope]
        self.result.unchanged += len(plan.hosts) - len(hosts)
        secrets = {
            secret["metadata"]["name"]
            for desired in hosts
            for secret in (desired.secret, desired.network_secret)
            if secret is not None
        }
        live = {
            BARE_METAL_HOST.kind: self.kube.live(BARE_METAL_HOST, {host.name for host in hosts}, namespace),
            SECRET.kind: self.kube.live(SECRET, secrets, namespace),
        }
        self.live_secrets = live[SECRET.kind]

        self.each_device(
            hosts,
            lambda desired: self._converge_host(
                desired,
                live[BARE_METAL_HOST.kind].get(desired.name),
                live[SECRET.kind].get(desired.secret["metadata"]["name"]),
            ),
        )
        self._prune(plan, prune, live)
        return self.result

    def _converge_host(
        self, desired: DesiredHost, live_host: dict[str, Any] | None, live_secret: dict[str, Any] | None
    ) -> None:
        adopt_host = self.adoptable(live_host, desired.host)
        host_is_ours = live_host is not None and (adopt_host or self.owner.owns(live_host))

        def adopt_secret(secret: Mapping[str, Any] | None) -> bool:
            # The original operator wrote its Secrets without labels: they go with the host naming them.
            return host_is_ours and unowned(secret) and references(live_host, (secret or {})["metadata"]["name"])

        adopt = {"host": adopt_host, "secret": adopt_secret(live_secret)}
        if self.name_taken(desired, [(BARE_METAL_HOST, live_host, adopt_host), (SECRET, live_secret, adopt["secret"])]):
            return
        outcomes: list[WriteOutcome] = []
        # Server-side apply of our fields only: Metal3's own label, owner reference and finalizer on
        # the Secret stay as they are.
        if not is_ignored(live_secret):
            outcomes.append(self.write(SECRET, desired.secret, live_secret))
        if desired.network_secret is not None:
            live_network = self.live_secrets.get(desired.network_secret["metadata"]["name"])
            adopt["network"] = adopt_secret(live_network)
            if live_network is None or self.owner.owns(live_network) or adopt["network"]:
                outcomes.append(self.write(SECRET, desired.network_secret, live_network))
        host = desired.host
        if live_host is not None:
            drift = registration_drift(host, live_host)
            if drift:
                details = "; ".join(
                    f"{path}: NetBox says {want!r}, the host has {have!r}" for path, (want, have) in drift.items()
                )
                self.result.drifted.append(
                    DeviceProblem(
                        device=desired.device_name,
                        device_id=desired.device_id,
                        reason="RegistrationDrift",
                        message=f"{details} (Metal3 does not change it after registration)",
                    )
                )
            host = keep_registered(host, live_host, keep_certificate_verification=self.keep_certificate_verification)
        outcomes.append(self.write(BARE_METAL_HOST, host, live_host))
        self.result.count(desired.name, outcomes, adopted=any(adopt.values()))

    def _prune(self, plan: Plan, prune: PrunePolicy, live: Mapping[str, Mapping[str, dict[str, Any]]]) -> None:
        # Hosts decide; a host's Secret goes with it (Metal3 releases its finalizer once the host is gone).
        decision = self.prune_decision(
            [(BARE_METAL_HOST, live[BARE_METAL_HOST.kind])],
            plan.hosts,
            plan.selected_device_ids,
            enabled=prune.enabled,
            disabled_reason='deprovisioning is destructive: set argora.cloud.sap/prune: "true" to delete hosts',
            cap=prune.cap,
        )
        for obj in decision.delete:
            self.delete(BARE_METAL_HOST, obj.name, self.owner.namespace, uid=obj.uid)
            for name in (secret_name(obj.name), network_secret_name(obj.name)):
                secret = live[SECRET.kind].get(name)
                if secret is not None and self.owner.owns(secret):
                    self.delete(SECRET, name, self.owner.namespace, uid=secret["metadata"]["uid"])
            self.result.pruned.append(obj.name)
        self.result.held_back = [obj.name for obj in decision.held_back]
        self.result.held_back_reason = decision.reason
