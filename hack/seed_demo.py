"""Load `make demo`'s inventory (argora_dev/demo_inventory.py) into a NetBox of your own, e.g. docker-compose's.

    NETBOX_PASSWORD=... python -m hack.seed_demo --url http://netbox:8080 --username admin --token-dir DIR
    NETBOX_TOKEN=...    python -m hack.seed_demo --url http://localhost:8000

Waits until NetBox answers, then seeds each part of the demo inventory NetBox lacks (so a second run
changes nothing). With an admin's username and password (the password from NETBOX_PASSWORD, never
the command line) it makes its own API token; else it uses NETBOX_TOKEN (or --token). With
--token-dir it also provisions two tokens for the controllers and writes them to files there, for
ARGORA_NETBOX_TOKEN_FILE: `read` (write_enabled false, for argora-ironcore, argora-metal3 and
argora-ippool) and `write` (for argora-update and argora-ipaddress). That needs the username and
password.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from argora_dev.demo_inventory import seed
from argora_dev.seed import NetBoxSeeder


def auth_headers(token: str) -> dict[str, str]:
    """v2 tokens ('nbt_<key>.<secret>') go as 'Bearer', 40-character v1 keys as 'Token'."""
    scheme = "Bearer" if token.startswith("nbt_") else "Token"
    return {"Authorization": f"{scheme} {token}", "Accept": "application/json", "Content-Type": "application/json"}


def wait_for_netbox(url: str, timeout: float) -> None:
    """Until NetBox's API answers at all (an unauthenticated request gets 403 once it is up)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{url}/api/status/", timeout=10)
            if response.status_code < 500:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(3)
    raise SystemExit(f"seed_demo: NetBox at {url} not up after {timeout:.0f}s: {last}")


def provision_token(url: str, username: str, password: str, description: str, write_enabled: bool) -> str:
    """A new API token of `username` (NetBox's provision endpoint), as the client sends it."""
    response = requests.post(
        f"{url}/api/users/tokens/provision/",
        json={"username": username, "password": password, "description": description, "write_enabled": write_enabled},
        headers={"Accept": "application/json"},
        timeout=60,
    )
    if not response.ok:
        raise SystemExit(f"seed_demo: provisioning a token failed: HTTP {response.status_code} {response.text[:300]}")
    data: dict[str, Any] = response.json()
    # v2: the client sends 'nbt_<key>.<secret>'; the secret is in the response this once only.
    return f"nbt_{data['key']}.{data['token']}" if data.get("version") == 2 else str(data["token"])


def write_token(folder: Path, name: str, token: str) -> None:
    """Replace the file in one step: the controllers re-read it when it changes and must never see
    half a token. World-readable, since the controllers run as another user than this job."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    Path(tmp).chmod(0o644)
    Path(tmp).replace(folder / name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.seed_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="NetBox base URL")
    parser.add_argument("--username", help="admin to make tokens for (password from NETBOX_PASSWORD)")
    parser.add_argument("--token", default=os.environ.get("NETBOX_TOKEN"), help="admin API token (NETBOX_TOKEN)")
    parser.add_argument("--token-dir", type=Path, help="write the controllers' tokens `read` and `write` here")
    parser.add_argument("--wait", type=float, default=900, help="seconds to wait for NetBox (default 900)")
    args = parser.parse_args(argv)
    url = str(args.url).rstrip("/")
    password = os.environ.get("NETBOX_PASSWORD", "")
    if args.username and not password:
        parser.error("--username needs the password in NETBOX_PASSWORD")
    if not args.username and (args.token_dir or not args.token):
        parser.error("give --username (and NETBOX_PASSWORD), or an admin token without --token-dir")

    wait_for_netbox(url, args.wait)
    token = args.token or provision_token(url, args.username, password, "argora demo: seeding", True)
    seeder = NetBoxSeeder(url, auth_headers(token))
    seeded = seed(seeder)
    print(
        f"seed_demo: seeded {'; '.join(seeded)}" if seeded else "seed_demo: the demo inventory is there already",
        flush=True,
    )
    if args.token_dir:
        for name, write_enabled in (("read", False), ("write", True)):
            new = provision_token(url, args.username, password, f"argora demo: {name}", write_enabled)
            write_token(args.token_dir, name, new)
        print(f"seed_demo: wrote tokens `read` and `write` to {args.token_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
