"""Console script `argora-ippool`."""

from collections.abc import Sequence

from argora_common.identity import ARGORA_IPPOOL
from argora_common.operator import Controller, run
from ippool_controller.handlers import register
from ippool_controller.reconcile import INTEREST
from ippool_controller.settings import IPPoolSettings

CONTROLLER = Controller(
    identity=ARGORA_IPPOOL,
    description="Turns IPPoolImports into Cluster API GlobalInClusterIPPools, one per selected NetBox prefix.",
    register=register,
    settings_class=IPPoolSettings,
    interest=INTEREST,
)


def main(argv: Sequence[str] | None = None) -> None:
    run(CONTROLLER, argv)


if __name__ == "__main__":
    main()
