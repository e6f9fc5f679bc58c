"""kopf wiring of argora-update: only this controller's handlers are registered here."""

import kopf

registry = kopf.OperatorRegistry()
