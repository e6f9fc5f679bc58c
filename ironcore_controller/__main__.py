"""Console script `argora-ironcore`."""

from collections.abc import Sequence

from argora_common.identity import ARGORA_IRONCORE
from argora_common.operator import Controller, run
from ironcore_controller.handlers import register
from ironcore_controller.reconcile import INTEREST
from ironcore_controller.settings import IroncoreSettings

CONTROLLER = Controller(
    identity=ARGORA_IRONCORE,
    description="Turns ClusterImports into metal-operator BMCs and BMCSecrets, one pair per NetBox device.",
    register=register,
    settings_class=IroncoreSettings,
    interest=INTEREST,
)


def main(argv: Sequence[str] | None = None) -> None:
    run(CONTROLLER, argv)


if __name__ == "__main__":
    main()
