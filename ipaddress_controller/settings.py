"""Settings of argora-ipaddress: the shared ones plus which pools, interfaces and tag it works with."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from argora_common.settings import Settings


class IPAddressSettings(Settings):
    pool_scope: Literal["all", "argora"] = Field(
        default="all",
        description="Whose IPAddresses are recorded: all (every IPAddress of the cluster, as the original"
        " operator did) or argora (those of argora-ippool's pools and of ARGORA_POOL_NAMES)",
    )
    pool_names: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="With ARGORA_POOL_SCOPE=argora: comma-separated GlobalInClusterIPPools whose addresses are"
        " recorded besides those of argora-ippool's pools",
    )
    lag_interface_pattern: str = Field(
        default=r"^LAG(\d+)$",
        description="Regex for the LAG interfaces an address goes on; the one with the highest number wins",
    )
    created_tag: str = Field(
        default="argora-ipaddress", description="Slug of the NetBox tag on the addresses argora-ipaddress created"
    )
    dry_run: bool = Field(default=False, description="Compute and report what would be written, write nothing")
    max_deletes_per_pass: int = Field(default=50, ge=0, description="Most released NetBox addresses deleted per pass")
    release_breaker_percent: int = Field(
        default=50,
        ge=1,
        le=100,
        description="Hold every release of a pass that would release more than this share of the NetBox"
        " addresses carrying the tag (more than 5), or any while the cluster has no IPAddress; 100: off",
    )

    @field_validator("pool_names", mode="before")
    @classmethod
    def _split_pool_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("lag_interface_pattern")
    @classmethod
    def _one_number_group(cls, value: str) -> str:
        try:
            pattern = re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        if pattern.groups != 1:
            raise ValueError("needs exactly one group, the LAG's number")
        return value
