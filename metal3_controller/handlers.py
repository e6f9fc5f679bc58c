"""kopf wiring of argora-metal3: only this controller's handlers are registered here."""

import kopf

registry = kopf.OperatorRegistry()
