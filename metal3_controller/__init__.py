"""argora-metal3: Reconciles Cluster API Cluster objects into Metal3 BareMetalHosts and their BMC credential Secrets."""
