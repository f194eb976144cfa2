#!/usr/bin/env bash
# Install what the tongdai test suite needs on a bare Debian 12 machine.
#
# Idempotent: anything already present is skipped, and `apt-get update` only runs
# when something must actually be installed. Safe to run on every `scripts/test.sh`.
#
#   sip-tester (SIPp 3.6.1)  SIP caller/callee for tests/sipp/*.xml
#   tshark                   decoding captured RTP / RFC 4733 in tests
#   sox + libsox-fmt-all     prompt conversion and WAV checks (soxi)
#   espeak-ng                Vietnamese prompt synthesis (scripts/gen-prompts.sh)
#   python3                  small helpers (manifest parsing, pcap writing)
#   postgresql(-client)      the Postgres store tests (TONGDAI_TEST_DATABASE_URL)
#   chromium                 the live page's browser test (headless), driven by
#   nodejs + npm             playwright-core from npm (tests/browser, `npm ci`)
#   python3-venv             schemathesis from PyPI in a venv (the OpenAPI test)
#
# The venv lives in $TONGDAI_TEST_DEPS (default ~/.cache/tongdai-test-deps)/venv;
# tests/api/api_openapi.rs looks for schemathesis there.
#
# PostgreSQL: if a server already answers on 127.0.0.1:5432 it is used as is.
# Otherwise the Debian package is installed, the cluster started without systemd,
# 127.0.0.1 set to `trust` in pg_hba.conf, and database `test` created.
#
# Exports nothing; prints one summary line of the versions found.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
PG_DB=test

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    fi
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=300 -y -q --no-install-recommends)
apt_updated=0

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

# True if the Debian package is installed (status "install ok installed").
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

apt_install() {
    if [[ $apt_updated -eq 0 ]]; then
        log "apt-get update"
        $SUDO apt-get -o DPkg::Lock::Timeout=300 -q update >&2
        apt_updated=1
    fi
    log "apt-get install $*"
    $SUDO apt-get "${APT_OPTS[@]}" install "$@" >&2
}

# need <command> <package>: install <package> unless <command> is on PATH.
missing=()
need() {
    local cmd=$1 pkg=$2
    if ! command -v "$cmd" >/dev/null 2>&1 && ! pkg_installed "$pkg"; then
        missing+=("$pkg")
    fi
}

need sipp sip-tester
need tshark tshark
need sox sox
need espeak-ng espeak-ng
need python3 python3
need chromium chromium
need node nodejs
# Debian's nodejs ships npm separately (NodeSource's bundles it).
if ! command -v npm >/dev/null 2>&1 && ! pkg_installed npm; then
    missing+=(npm)
fi
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && ! pkg_installed python3-venv; then
    missing+=(python3-venv)
fi
# libsox-fmt-all has no binary of its own; test the package.
if ! pkg_installed libsox-fmt-all; then
    missing+=(libsox-fmt-all)
fi

if ((${#missing[@]} > 0)); then
    for p in "${missing[@]}"; do
        if [[ $p == tshark ]]; then
            # Without this, tshark's postinst asks whether non-root may capture.
            echo 'wireshark-common wireshark-common/install-setuid boolean false' |
                $SUDO debconf-set-selections
        fi
    done
    apt_install "${missing[@]}"
fi

# ---------------------------------------------------------------- PostgreSQL
pg_answers() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }

as_postgres() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        $SUDO -u postgres "$@"
    fi
}

if pg_answers; then
    log "PostgreSQL already answers on $PG_HOST:$PG_PORT; using it"
else
    pg_pkgs=()
    pkg_installed postgresql || command -v pg_ctlcluster >/dev/null 2>&1 || pg_pkgs+=(postgresql)
    command -v psql >/dev/null 2>&1 || pg_pkgs+=(postgresql-client)
    if ((${#pg_pkgs[@]} > 0)); then
        apt_install "${pg_pkgs[@]}"
    fi

    # Highest installed major version that has a cluster (the package creates "main").
    ver=$(pg_lsclusters -h 2>/dev/null | awk '$2 == "main" {print $1}' | sort -n | tail -1)
    if [[ -z $ver ]]; then
        ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
        log "creating cluster $ver/main"
        $SUDO pg_createcluster "$ver" main --port "$PG_PORT" >&2
    fi

    hba=/etc/postgresql/$ver/main/pg_hba.conf
    if ! grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        log "setting trust auth for 127.0.0.1 in $hba"
        # Put our line first so it wins over the package's scram-sha-256 lines.
        tmp=$(mktemp)
        { echo 'host    all    all    127.0.0.1/32    trust   # tongdai tests'; cat "$hba"; } >"$tmp"
        $SUDO cp "$tmp" "$hba"
        rm -f "$tmp"
        $SUDO chown postgres:postgres "$hba"
    fi

    # No systemd in these containers: start (or reload) the cluster directly.
    status=$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" {print $4}')
    if [[ $status == online ]]; then
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >&2
    else
        log "starting cluster $ver/main"
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2
    fi

    for _ in $(seq 1 30); do
        pg_answers && break
        sleep 1
    done
    pg_answers || { log "PostgreSQL did not come up on $PG_HOST:$PG_PORT"; exit 1; }
fi

if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Atqc \
    "select 1 from pg_database where datname = '$PG_DB'" postgres | grep -q 1; then
    log "creating database $PG_DB"
    if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -qc "create database $PG_DB owner postgres" postgres; then
        # The server answers but not with trust for us: try the local socket as postgres.
        as_postgres psql -p "$PG_PORT" -qc "create database $PG_DB owner postgres"
    fi
fi

# ---------------------------------------------------------------- browser + OpenAPI tools
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# playwright-core (pinned in tests/browser/package-lock.json) drives Debian's chromium;
# it never downloads a browser of its own.
if [[ ! -f $ROOT/tests/browser/node_modules/playwright-core/package.json ]] ||
    ! cmp -s "$ROOT/tests/browser/package-lock.json" "$ROOT/tests/browser/node_modules/.package-lock.json.copy"; then
    log "npm ci in tests/browser (playwright-core)"
    (cd "$ROOT/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
    cp "$ROOT/tests/browser/package-lock.json" "$ROOT/tests/browser/node_modules/.package-lock.json.copy"
fi

SCHEMATHESIS_VERSION=4.32.5
DEPS_DIR=${TONGDAI_TEST_DEPS:-$HOME/.cache/tongdai-test-deps}
VENV=$DEPS_DIR/venv
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    log "schemathesis $SCHEMATHESIS_VERSION into $VENV"
    mkdir -p "$DEPS_DIR"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi

# ---------------------------------------------------------------- summary
v_sipp=$(sipp -v 2>&1 | grep -o 'v[0-9][0-9.]*' | head -1 || true)
v_tshark=$(tshark --version 2>/dev/null | head -1 | awk '{print $3}' || true)
v_sox=$(sox --version 2>/dev/null | grep -o 'v[0-9][0-9.]*' | head -1 || true)
v_espeak=$(espeak-ng --version 2>/dev/null | awk '{print $4}' || true)
v_py=$(python3 --version 2>&1 | awk '{print $2}' || true)
v_pg=$(psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Atqc 'show server_version' postgres 2>/dev/null | awk '{print $1}' || true)
v_chromium=$(chromium --version 2>/dev/null | awk '{print $2}' || true)
v_node=$(node --version 2>/dev/null || true)
v_st=$("$VENV/bin/schemathesis" --version 2>/dev/null | awk '{print $NF}' || true)
echo "test deps: sipp ${v_sipp:-?} | tshark ${v_tshark:-?} | sox ${v_sox:-?} | espeak-ng ${v_espeak:-?} | python3 ${v_py:-?} | postgres ${v_pg:-?} on $PG_HOST:$PG_PORT db=$PG_DB | chromium ${v_chromium:-?} | node ${v_node:-?} | schemathesis ${v_st:-?}"
