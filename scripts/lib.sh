# Shared by scripts/run and scripts/test: a virtualenv with the project installed,
# and PostgreSQL and Redis reachable on loopback (started, or installed from
# Debian's packages, when DATABASE_URL / REDIS_URL are not given).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
cd "$ROOT"

# Bold on a terminal only: a log file or a pipe gets no escape codes.
log() {
    if [ -t 2 ]; then printf '\033[1m==> %s\033[0m\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv in $VENV"
        python3.11 -m venv "$VENV"
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    local stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -e "$stamp" ]; then
        log "installing the project and its test tools"
        "$VENV/bin/pip" install --quiet --upgrade pip
        "$VENV/bin/pip" install --quiet -e '.[dev]'
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}

apt_install() {
    log "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # wait_for <description> <command...>
    local what="$1"; shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    log "$what did not come up"
    return 1
}

ensure_postgres() {
    if [ -n "${DATABASE_URL:-}" ]; then return 0; fi
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        apt_install postgresql
    fi
    local version
    version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
    if [ ! -d "/etc/postgresql/$version/main" ]; then
        as_root pg_createcluster "$version" main >/dev/null
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for "PostgreSQL" pg_isready -q -h 127.0.0.1 -p 5432
    # Local development trusts loopback, as the machine's own cluster does.
    if ! psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1; then
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
}

ensure_redis() {
    if [ -n "${REDIS_URL:-}" ]; then return 0; fi
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
    if ! command -v redis-server >/dev/null; then
        apt_install redis-server
    fi
    log "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/crm.log
    wait_for "Redis" redis-cli -h 127.0.0.1 -p 6379 ping
}

ensure_services() {
    if [ -z "${DATABASE_URL:-}" ] && ! command -v pg_isready >/dev/null; then
        apt_install postgresql-client
    fi
    if [ -z "${REDIS_URL:-}" ] && ! command -v redis-cli >/dev/null; then
        apt_install redis-tools
    fi
    ensure_postgres
    ensure_redis
}

ensure_fault_tools() {
    # The fault suite (tests/faults/) starts a redis-server and a PostgreSQL cluster of its own.
    if ! command -v redis-server >/dev/null; then
        apt_install redis-server
    fi
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        apt_install postgresql
    fi
}
