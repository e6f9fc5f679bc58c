"""Operator settings from `ARGORA_*` environment variables (pydantic-settings).

A missing or malformed setting stops the process at start with one line naming the variable and
what is wrong: `load_settings` turns pydantic's validation report into that line.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, Literal, NoReturn, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "ARGORA_"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# What every port setting accepts, here once rather than repeated as bounds in each Field. A field's own
# Field must not narrow it with ge/le: of two bounds of a kind pydantic enforces only one.
Port = Annotated[int, Field(ge=1, le=65535)]


class SecretReference(BaseModel):
    """A Kubernetes Secret by namespace and name, written `namespace/name` in the environment."""

    namespace: str
    name: str

    @classmethod
    def parse(cls, value: str) -> SecretReference:
        namespace, sep, name = value.partition("/")
        if not sep or not _DNS_LABEL.match(namespace) or not _DNS_SUBDOMAIN.match(name):
            raise ValueError(f"expected 'namespace/name' of a Secret, got {value!r}")
        return cls(namespace=namespace, name=name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Settings(BaseSettings):
    """What every Argora operator reads from its environment."""

    # An empty variable counts as unset: Helm and compose files render unset values as "".
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True)

    netbox_url: AnyHttpUrl = Field(description="Base URL of NetBox, e.g. https://netbox.example.com")
    netbox_token: SecretStr | None = Field(
        default=None, description="NetBox API token: a v1 key (40 chars) or a v2 token 'nbt_<key>.<secret>'"
    )
    netbox_token_file: Path | None = Field(
        default=None, description="File holding the token instead; re-read when it changes (mounted Secret)"
    )
    netbox_ca_bundle: Path | None = Field(default=None, description="PEM bundle that signs NetBox's certificate")
    netbox_verify_tls: bool = Field(default=True, description="Verify NetBox's TLS certificate")
    netbox_timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Timeout of one request")
    netbox_retries: int = Field(default=5, ge=1, le=20, description="Attempts per request on 429/5xx/network errors")
    netbox_page_size: int = Field(default=1000, ge=1, le=1000, description="Objects per NetBox page")
    netbox_reads_in_flight: int = Field(
        default=4, ge=1, le=32, description="Most NetBox reads of one pass sent at once (independent lists, id chunks)"
    )
    kube_writes_in_flight: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Most Kubernetes writes sent at once; the API server's 429s (priority and fairness) slow them",
    )
    workers: int = Field(
        default=8, ge=1, le=64, description="Passes run at once (the work queue's workers), each over another resource"
    )
    resync_interval_seconds: float = Field(default=300.0, ge=10, description="Full reconcile period")
    retry_base_seconds: float = Field(
        default=30.0, ge=1, le=86400, description="Delay before retrying a failed pass; doubles with each failure"
    )
    retry_max_seconds: float = Field(
        default=600.0, ge=1, le=86400, description="Longest delay between retries of a failing pass"
    )
    metrics_port: Port = Field(default=9090, description="Prometheus /metrics port")
    health_port: Port = Field(default=8080, description="Liveness /healthz port")
    label_prefix: str = Field(
        default="kubernetes.metal.cloud.sap", description="Prefix of the NetBox-derived labels on objects"
    )
    default_bmc_credentials: Annotated[SecretReference | None, NoDecode] = Field(
        default=None, description="'namespace/name' of the Secret used when a resource names none"
    )
    credentials_opt_in: bool = Field(
        default=True,
        description="Use a Secret a resource names as BMC credentials only when it is labelled "
        "argora.cloud.sap/bmc-credentials=true (the default Secret need not be)",
    )
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated namespaces to watch; empty watches all"
    )
    own_namespace: str = Field(
        default="default",
        description="The operator's own namespace (the chart sets its release's): state only the operator "
        "writes lives there",
    )
    standalone: bool = Field(
        default=False, description="No election: this replica is always active (only for a single replica)"
    )
    peering_lifetime_seconds: int = Field(
        default=60,
        ge=10,
        le=3600,
        description="The term of the active replica's Lease (renewed every third of it): a standby takes over "
        "about this long after the active replica is cut off or dies without stopping",
    )
    netbox_changes_interval: float = Field(
        default=10.0, ge=0, le=3600, description="Seconds between looks at NetBox's change log; 0 turns them off"
    )
    netbox_full_read_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="While the change log says nothing changed, resyncs reuse the last NetBox reads for at most "
        "this long; 0 reads NetBox on every resync",
    )
    change_coalesce_seconds: float = Field(
        default=0.5, ge=0, le=60, description="Changes arriving within this window start one pass per resource"
    )
    webhook_port: Port = Field(default=8081, description="Port of POST /netbox/webhook")
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC secret of NetBox's webhook; the webhook is served only when one is set"
    )
    webhook_secret_file: Path | None = Field(default=None, description="File holding the webhook secret instead")
    webhook_service: str | None = Field(
        default=None,
        description="Service (in the own namespace) NetBox's webhook calls; the chart sets it: the active replica "
        "writes its EndpointSlice, naming this pod (POD_IP) alone",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level")

    @field_validator("default_bmc_credentials", mode="before")
    @classmethod
    def _parse_secret_reference(cls, value: object) -> object:
        if isinstance(value, str):
            return SecretReference.parse(value.strip()) if value.strip() else None
        return value

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            names = [part.strip() for part in value.split(",") if part.strip()]
            bad = [name for name in names if not _DNS_LABEL.match(name)]
            if bad:
                raise ValueError(f"not a namespace name: {', '.join(bad)}")
            return names
        return value

    @field_validator("own_namespace")
    @classmethod
    def _check_own_namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(f"not a namespace name: {value!r}")
        return value

    @field_validator("webhook_service")
    @classmethod
    def _check_webhook_service(cls, value: str | None) -> str | None:
        if value is not None and not _DNS_LABEL.match(value):
            raise ValueError(f"not a Service name: {value!r}")
        return value

    @field_validator("label_prefix")
    @classmethod
    def _check_label_prefix(cls, value: str) -> str:
        if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
            raise ValueError("must be a DNS subdomain such as 'kubernetes.metal.cloud.sap'")
        return value

    @field_validator("netbox_ca_bundle", "netbox_token_file", "webhook_secret_file")
    @classmethod
    def _check_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not os.access(value, os.R_OK):
            raise ValueError(f"cannot read file {value}")
        return value

    # NetBox signs with HMAC keyed by the secret: an empty key is one anyone can sign with. The secret is
    # used stripped (RotatingSecret), so whitespace alone is as empty.
    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is empty or only whitespace")
        return value

    @field_validator("webhook_secret_file")
    @classmethod
    def _check_webhook_secret_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.read_text().strip():
            raise ValueError(f"{value} is empty or only whitespace")
        return value

    @model_validator(mode="after")
    def _exactly_one_token_source(self) -> Self:
        if (self.netbox_token is None) == (self.netbox_token_file is None):
            raise ValueError(f"set exactly one of {ENV_PREFIX}NETBOX_TOKEN and {ENV_PREFIX}NETBOX_TOKEN_FILE")
        return self

    @model_validator(mode="after")
    def _one_webhook_secret_source(self) -> Self:
        if self.webhook_secret is not None and self.webhook_secret_file is not None:
            raise ValueError(f"set at most one of {ENV_PREFIX}WEBHOOK_SECRET and {ENV_PREFIX}WEBHOOK_SECRET_FILE")
        return self

    @model_validator(mode="after")
    def _retry_base_within_max(self) -> Self:
        if self.retry_base_seconds > self.retry_max_seconds:
            raise ValueError(
                f"{ENV_PREFIX}RETRY_BASE_SECONDS ({self.retry_base_seconds:g}) exceeds "
                f"{ENV_PREFIX}RETRY_MAX_SECONDS ({self.retry_max_seconds:g})"
            )
        return self


class PrefixGatewaySettings(Settings):
    """The gateway of a NetBox prefix, for the controllers that hand out its addresses."""

    gateway_custom_field: str = Field(
        default="gateway",
        description="Custom field of NetBox prefixes that holds the gateway (argora-metal3's networkData, "
        "argora-ippool's pools; argora-ippool falls back to the first host)",
    )


def describe_errors(error: ValidationError) -> str:
    """One line naming each offending variable and what is wrong with it (never its value)."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        location = [str(part) for part in item["loc"] if isinstance(part, str)]
        variable = f"{ENV_PREFIX}{location[0].upper()}" if location else "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{variable}: {message}" if location else message)
    return "; ".join(parts)


def load_settings[S: Settings](cls: type[S], program: str) -> S:
    """Read settings or leave the process with exit code 2 and one line on stderr."""
    try:
        return cls()
    except ValidationError as error:
        exit_with(program, f"invalid configuration: {describe_errors(error)}")


def exit_with(program: str, message: str) -> NoReturn:
    print(f"{program}: {message}", file=sys.stderr)
    raise SystemExit(2)
