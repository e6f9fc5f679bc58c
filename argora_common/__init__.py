"""Shared library of the Argora operators: settings, NetBox access, CRD models, Kubernetes helpers."""
