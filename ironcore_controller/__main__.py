"""Console script `argora-ironcore`."""

from collections.abc import Sequence

from argora_common.operator import Controller, run
from ironcore_controller.handlers import registry

CONTROLLER = Controller(
    name="ironcore",
    description="Turns ClusterImports into metal-operator BMCs and BMCSecrets, one pair per NetBox device.",
    registry=registry,
)


def main(argv: Sequence[str] | None = None) -> None:
    run(CONTROLLER, argv)


if __name__ == "__main__":
    main()
