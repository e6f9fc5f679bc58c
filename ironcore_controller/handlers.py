"""kopf wiring of argora-ironcore: only this controller's handlers are registered here."""

import kopf

registry = kopf.OperatorRegistry()
