"""Console script `argora-ipaddress`."""

from collections.abc import Sequence

from argora_common.identity import ARGORA_IPADDRESS
from argora_common.operator import Controller, run
from ipaddress_controller.handlers import register
from ipaddress_controller.settings import IPAddressSettings

CONTROLLER = Controller(
    identity=ARGORA_IPADDRESS,
    description="Records in NetBox the IPAddresses Cluster API hands out of Argora's pools: address, "
    "interface and the device's primary IP.",
    register=register,
    settings_class=IPAddressSettings,
)


def main(argv: Sequence[str] | None = None) -> None:
    run(CONTROLLER, argv)


if __name__ == "__main__":
    main()
