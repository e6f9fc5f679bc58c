"""Who each controller is wherever it shows: its program, its field manager on every object it writes,
its annotation and finalizer domain. Defined once here, so that argora-ipaddress can name the pools
argora-ippool manages without reaching into another controller's package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from argora_common.crds import GROUP


@dataclass(frozen=True)
class Identity:
    name: str  # short name: ironcore, metal3, update, ippool, ipaddress

    @property
    def program(self) -> str:
        return f"argora-{self.name}"

    @property
    def field_manager(self) -> str:
        return self.program

    @property
    def prefix(self) -> str:
        """Annotation/finalizer domain of this controller, e.g. `ironcore.argora.cloud.sap`."""
        return f"{self.name}.{GROUP}"


ARGORA_IRONCORE: Final = Identity("ironcore")
ARGORA_METAL3: Final = Identity("metal3")
ARGORA_UPDATE: Final = Identity("update")
ARGORA_IPPOOL: Final = Identity("ippool")
ARGORA_IPADDRESS: Final = Identity("ipaddress")
