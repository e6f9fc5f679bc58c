"""argora-update: Corrects NetBox for Update resources: BMC interface names, OOB IPs, leftover VMK interfaces."""
