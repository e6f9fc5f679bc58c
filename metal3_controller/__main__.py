"""Console script `argora-metal3`."""

from collections.abc import Sequence

from argora_common.identity import ARGORA_METAL3
from argora_common.operator import Controller, run
from metal3_controller.handlers import register
from metal3_controller.reconcile import INTEREST
from metal3_controller.settings import Metal3Settings

CONTROLLER = Controller(
    identity=ARGORA_METAL3,
    description="Reconciles Cluster API Cluster objects into Metal3 BareMetalHosts and their BMC credential Secrets.",
    register=register,
    settings_class=Metal3Settings,
    interest=INTEREST,
)


def main(argv: Sequence[str] | None = None) -> None:
    run(CONTROLLER, argv)


if __name__ == "__main__":
    main()
