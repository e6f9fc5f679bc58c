"""Argora's development package: the test harness and what the demo, the benchmark and the compose
seed job share. `tests/`, `hack/` and docker-compose.yml's seed job import it; production code never
does (tests/unit/test_layering.py checks), and the wheel and the images leave it out
(tests/integration/test_packaging.py checks). The seed job runs in the production image: what it
imports from here may use only the runtime dependencies.

It starts the real parts on loopback: kube-apiserver + etcd (`kube`), NetBox with PostgreSQL, Redis
and its webhook-sending worker (`netbox`), the controllers as their console scripts (`operator`), all
as child processes that are always stopped (`process`). It writes inventories into NetBox (`seed`;
`make demo`'s is in `demo_inventory`) and NetBox webhooks for tests (`webhooks`), reads and writes the
Kubernetes objects the controllers work on (`kubeobjects`), and reads the chart, helm and the
Dockerfile for their tests (`chart`, `helm`, `dockerfile`).
"""

from pathlib import Path

# The repository checkout: the harness runs hack/ scripts and reads the chart and the Dockerfile from it.
REPO_ROOT = Path(__file__).resolve().parents[1]
