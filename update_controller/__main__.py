"""Console script `argora-update`."""

from collections.abc import Sequence

from argora_common.identity import ARGORA_UPDATE
from argora_common.operator import Controller, run
from update_controller.handlers import register
from update_controller.reconcile import INTEREST

CONTROLLER = Controller(
    identity=ARGORA_UPDATE,
    description="Corrects NetBox for Update resources: BMC interface names, OOB IPs, leftover VMK interfaces.",
    register=register,
    interest=INTEREST,
)


def main(argv: Sequence[str] | None = None) -> None:
    run(CONTROLLER, argv)


if __name__ == "__main__":
    main()
