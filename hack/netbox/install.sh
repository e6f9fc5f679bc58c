#!/usr/bin/env bash
# Installs what the test harness needs to run a real NetBox, and caches a migrated database dump.
#
#   - Debian redis-server and PostgreSQL 15 server binaries (only when missing);
#   - NetBox (pinned) from PyPI in its own Python 3.12 virtualenv, outside the repository: it pins
#     Django and friends, which must not leak into the project's own environment;
#   - a pg_dump -Fc of a freshly migrated NetBox database: `netbox migrate` takes about 5 minutes,
#     restoring the dump takes about 2 seconds, so every test run restores instead of migrating.
#
# Idempotent: every step is skipped when its result is already there. Safe to re-run after a failure
# (a half-built virtualenv has no completion marker and is rebuilt; the dump is written atomically).
set -euo pipefail

NETBOX_VERSION=4.7.3
PG_BIN=/usr/lib/postgresql/15/bin
CACHE_ROOT="${ARGORA_CACHE:-$HOME/.cache/argora}"
NB_CACHE="$CACHE_ROOT/netbox-$NETBOX_VERSION"
VENV="$NB_CACHE/venv"
# Written last: a virtualenv without it was interrupted mid-install.
VENV_MARKER="$VENV/.argora-complete"
DUMP="$NB_CACHE/migrated.dump"

T0=$SECONDS
log() { printf '[netbox-install %4ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        log "must run as root to install Debian packages: $*"
        exit 1
    fi
}

# apt-get update only when the package is unknown to the local lists (a fresh image has none).
apt_install() {
    need_root "$@"
    local pkg
    for pkg in "$@"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            log "apt-get update (package lists do not know $pkg)"
            apt-get update -qq
            break
        fi
    done
    # Debian's maintainer scripts start the services they install (redis on 6379, a PostgreSQL
    # "main" cluster on 5432): the harness runs its own instances, so forbid that with a temporary
    # policy-rc.d unless the machine already has one.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    local rc=0 out
    out=$(mktemp)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$out" 2>&1 || rc=$?
    if [[ $created_policy -eq 1 ]]; then rm -f "$policy"; fi
    if [[ $rc -ne 0 ]]; then cat "$out" >&2; fi
    rm -f "$out"
    return "$rc"
}

find_python312() {
    local candidate
    # The pyenv shim named python3.12 exists even when 3.12 is not the selected version and then
    # fails, so every candidate is actually run.
    for candidate in "$(command -v python3.12 || true)" /root/.pyenv/versions/3.12*/bin/python3.12 \
        /usr/bin/python3.12 /usr/local/bin/python3.12; do
        [[ -n $candidate && -x $candidate ]] || continue
        if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# System packages
# ---------------------------------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server"
    apt_install redis-server
fi
if [[ ! -x $PG_BIN/initdb || ! -x $PG_BIN/postgres ]]; then
    log "installing postgresql-15"
    apt_install postgresql-15 postgresql-client-15
fi
if ! id postgres >/dev/null 2>&1; then
    log "no 'postgres' user: PostgreSQL refuses to run as root and needs it"
    exit 1
fi

# ---------------------------------------------------------------------------------------------
# NetBox virtualenv
# ---------------------------------------------------------------------------------------------
mkdir -p "$NB_CACHE"
# Parallel test runs may call this at the same time: one installs, the others wait and then skip.
exec 9>"$NB_CACHE/.install.lock"
flock 9
if [[ ! -f $VENV_MARKER ]]; then
    PY312=$(find_python312) || { log "no working python3.12 found (NetBox $NETBOX_VERSION needs 3.12)"; exit 1; }
    log "creating $VENV with $PY312"
    rm -rf "$VENV"
    "$PY312" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
    log "pip install netbox==$NETBOX_VERSION"
    T_PIP=$SECONDS
    "$VENV/bin/pip" install -q --disable-pip-version-check "netbox==$NETBOX_VERSION"
    "$VENV/bin/netbox" --help >/dev/null 2>&1 || { log "netbox entry point does not run"; exit 1; }
    date -u +%FT%TZ >"$VENV_MARKER"
    log "virtualenv ready (pip install took $((SECONDS - T_PIP))s)"
else
    log "virtualenv present: $VENV"
fi

# ---------------------------------------------------------------------------------------------
# Migrated database dump
# ---------------------------------------------------------------------------------------------
if [[ -s $DUMP ]]; then
    log "dump present: $DUMP"
    log "done"
    exit 0
fi

# Short path under /tmp: the postgres user must reach it (a 0700 parent would lock it out) and the
# unix socket path must stay under 107 bytes.
WORK=$(mktemp -d /tmp/argora-nb-migrate.XXXXXX)
# Owned by postgres: pg_ctl writes its log there as that user (root can still write anywhere).
chown postgres:postgres "$WORK"
PGDATA="$WORK/pgdata"
PGSOCK="$WORK/sock"
install -d -o postgres -g postgres -m 700 "$PGDATA" "$PGSOCK"
PGPORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PG_STARTED=0

cleanup() {
    if [[ $PG_STARTED -eq 1 ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

log "initdb throwaway cluster in $WORK"
(cd "$WORK" && runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$WORK/initdb.log" 2>&1) || { cat "$WORK/initdb.log" >&2; exit 1; }

# Durability is worthless for a throwaway cluster and fsync dominates the many small DDL transactions
# of the migrations. Unix socket only: nothing else on the machine can reach it.
(cd "$WORK" && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$WORK/postgres.log" -w -t 60 \
    -o "-p $PGPORT -k $PGSOCK -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null) || { cat "$WORK/postgres.log" >&2; exit 1; }
PG_STARTED=1
"$PG_BIN/createdb" -h "$PGSOCK" -p "$PGPORT" -U postgres netbox

NB_ROOT="$WORK/netbox"
"$VENV/bin/netbox" setup --target "$NB_ROOT" >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; exit 1; }
# Only what `migrate` needs; the harness writes its own complete configuration at start.
cat >"$NB_ROOT/conf/configuration.py" <<EOF
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "netbox",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "$PGSOCK",
        "PORT": "$PGPORT",
        "CONN_MAX_AGE": 300,
    }
}
REDIS = {
    "tasks": {"HOST": "127.0.0.1", "PORT": 6379, "DATABASE": 0, "SSL": False},
    "caching": {"HOST": "127.0.0.1", "PORT": 6379, "DATABASE": 1, "SSL": False},
}
SECRET_KEY = "$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')-migrate-only-secret-key"
API_TOKEN_PEPPERS = {1: "$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')-migrate-only-pepper"}
EOF

log "netbox migrate (takes about 5 minutes)"
T_MIG=$SECONDS
NETBOX_ROOT="$NB_ROOT" "$VENV/bin/netbox" migrate --no-input >"$WORK/migrate.log" 2>&1 \
    || { tail -n 60 "$WORK/migrate.log" >&2; exit 1; }
log "migrate took $((SECONDS - T_MIG))s"

# Write next to the target and rename: a reader never sees a half-written dump.
"$PG_BIN/pg_dump" -h "$PGSOCK" -p "$PGPORT" -U postgres -Fc -f "$DUMP.tmp.$$" netbox
mv -f "$DUMP.tmp.$$" "$DUMP"
log "dump written: $DUMP ($(du -h "$DUMP" | cut -f1))"
log "done"
