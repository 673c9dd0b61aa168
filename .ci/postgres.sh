# shellcheck shell=bash
# Starts a throw-away PostgreSQL cluster for the tests and exports
#   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:<port>/postgres
# Meant to be SOURCED (`source .ci/postgres.sh`), by .ci/test or by hand in an
# interactive shell; the cluster is stopped and its directory removed when that
# shell exits (an EXIT trap, chained after any trap already set).
#
# - Does nothing if TEST_DATABASE_URL is already set (use your own server).
# - Uses the newest /usr/lib/postgresql/<version>/bin (Debian/Ubuntu layout);
#   if there is none, installs Debian's `postgresql` package (root only),
#   without letting it create and start its default cluster.
# - PostgreSQL refuses to run as root: as root, the cluster runs as the
#   `postgres` OS user (which the Debian package creates).
# - Trust authentication, listening only on 127.0.0.1 (a free port) and on a
#   Unix socket inside the cluster's directory; fsync off (throw-away data).
# - TLS for the database-TLS tests, when openssl is present (Debian's
#   postgresql package depends on it): a throw-away CA and a server
#   certificate for IP 127.0.0.1 only, ssl=on, and exports
#     TEST_DATABASE_CA=<the CA's PEM file>
#     TEST_DATABASE_OTHER_CA=<a CA that signed nothing here>
#   The role `tls_only` may connect over TCP with TLS only (pg_hba).
#
# Returns non-zero (never exits the caller's shell itself) on failure.

_trl_pg_say() { printf 'postgres.sh: %s\n' "$*" >&2; }

# Newest PostgreSQL server bin directory, or nothing.
_trl_pg_bindir() {
    local initdb
    initdb=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
    if [[ -x "$initdb" ]]; then
        dirname "$initdb"
    fi
}

# Installs Debian's PostgreSQL server, with no default cluster.
_trl_pg_install() {
    if [[ $(id -u) -ne 0 ]]; then
        _trl_pg_say "no PostgreSQL server found under /usr/lib/postgresql and not root, so cannot install it."
        _trl_pg_say "Install it (Debian/Ubuntu: sudo apt-get install postgresql), or set TEST_DATABASE_URL=postgres://USER@HOST:PORT/DB to a server where USER may create databases."
        return 1
    fi
    _trl_pg_say "no PostgreSQL server found; installing Debian's postgresql package"
    apt-get update -qq || return 1
    # postgresql-common first, so that the server package does not create and
    # start a "main" cluster that would outlive the tests.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-common >/dev/null || return 1
    if [[ -f /etc/postgresql-common/createcluster.conf ]]; then
        sed -i -E 's/^[#[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || return 1
}

# Prints a TCP port on 127.0.0.1 that nothing listens on right now.
_trl_pg_free_port() {
    if command -v python3 >/dev/null 2>&1 &&
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null; then
        return 0
    fi
    local port tries
    for ((tries = 0; tries < 100; tries++)); do
        port=$((20000 + RANDOM % 40000))
        # A refused connection means the port is free.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# Runs a PostgreSQL program as the cluster's owner, from inside its directory.
_trl_pg_as_owner() {
    (
        cd "$_TRL_PG_DIR" || exit 1
        if [[ $(id -u) -eq 0 ]]; then
            exec runuser -u postgres -- "$@"
        else
            exec "$@"
        fi
    )
}

# Stops the cluster and removes its directory.
_trl_pg_stop() {
    if [[ -n "${_TRL_PG_DIR:-}" && -d "$_TRL_PG_DIR" ]]; then
        if [[ -f "$_TRL_PG_DIR/data/postmaster.pid" ]]; then
            if ! _trl_pg_as_owner "$_TRL_PG_BIN/pg_ctl" -D "$_TRL_PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
                # Last resort: the postmaster we started, by its PID.
                local pid
                pid=$(head -n 1 "$_TRL_PG_DIR/data/postmaster.pid" 2>/dev/null)
                if [[ "$pid" =~ ^[0-9]+$ ]]; then
                    kill -KILL "$pid" 2>/dev/null
                fi
            fi
        fi
        rm -rf "$_TRL_PG_DIR"
    fi
    _TRL_PG_DIR=
}

# The EXIT trap: stops the cluster, then runs the trap set before ours.
_trl_pg_cleanup() {
    _trl_pg_stop
    if [[ -n "${_TRL_PG_PREV_EXIT_TRAP:-}" ]]; then
        eval "$_TRL_PG_PREV_EXIT_TRAP"
    fi
}

# Makes a CA, a server certificate for 127.0.0.1 signed by it, and a second
# CA, under $_TRL_PG_DIR/tls; lets `tls_only` in over TCP with TLS only.
# Returns non-zero (and the cluster runs without TLS) without openssl.
_trl_pg_tls() {
    local tls=$_TRL_PG_DIR/tls
    if ! command -v openssl >/dev/null 2>&1; then
        _trl_pg_say "openssl not found: the database runs without TLS, and the database-TLS tests will fail"
        return 1
    fi
    mkdir -p "$tls" || return 1
    if ! (
        cd "$tls" &&
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=trl test CA" \
                -keyout ca.key -out ca.crt &&
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=trl other CA" \
                -keyout other-ca.key -out other-ca.crt &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
                -keyout server.key -out server.csr &&
            printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext &&
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                -days 2 -extfile server.ext -out server.crt
    ) >"$_TRL_PG_DIR/tls.log" 2>&1; then
        _trl_pg_say "making test certificates failed; the database runs without TLS:"
        tail -n 5 "$_TRL_PG_DIR/tls.log" >&2
        return 1
    fi
    chmod 600 "$tls/server.key"
    chmod 755 "$tls"
    chmod 644 "$tls/ca.crt" "$tls/other-ca.crt" "$tls/server.crt"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres: "$tls" || return 1
    fi
    # First match wins: tls_only over TCP needs TLS; everyone else as before.
    local hba=$_TRL_PG_DIR/data/pg_hba.conf
    {
        printf 'hostnossl all tls_only 127.0.0.1/32 reject\n'
        cat "$hba"
    } >"$hba.new" && cat "$hba.new" >"$hba" && rm -f "$hba.new"
}

_trl_pg_start() {
    local bin base port version attempt
    _TRL_PG_TRAP_SET=
    _TRL_PG_PREV_EXIT_TRAP=
    bin=$(_trl_pg_bindir)
    if [[ -z "$bin" ]]; then
        _trl_pg_install || { _trl_pg_say "installing PostgreSQL failed"; return 1; }
        bin=$(_trl_pg_bindir)
        if [[ -z "$bin" ]]; then
            _trl_pg_say "the postgresql package installed no /usr/lib/postgresql/*/bin/initdb"
            return 1
        fi
    fi

    base=${TMPDIR:-/tmp}
    if [[ $(id -u) -eq 0 ]]; then
        if ! id postgres >/dev/null 2>&1; then
            _trl_pg_say "running as root, but there is no 'postgres' OS user to run PostgreSQL as (PostgreSQL refuses to run as root)"
            return 1
        fi
        if ! command -v runuser >/dev/null 2>&1; then
            _trl_pg_say "running as root, but runuser (util-linux) is missing"
            return 1
        fi
        # The postgres user must be able to reach the directory.
        base=/tmp
    fi

    _TRL_PG_BIN=$bin
    _TRL_PG_DIR=$(mktemp -d "$base/trl-pg.XXXXXX") || return 1
    # Register the cleanup before anything can be left running.
    _TRL_PG_PREV_EXIT_TRAP=$(trap -p EXIT)
    if [[ -n "$_TRL_PG_PREV_EXIT_TRAP" ]]; then
        # `trap -- 'command' EXIT` -> command
        eval "set -- $_TRL_PG_PREV_EXIT_TRAP"
        _TRL_PG_PREV_EXIT_TRAP=$3
    fi
    trap _trl_pg_cleanup EXIT
    _TRL_PG_TRAP_SET=1

    chmod 700 "$_TRL_PG_DIR"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$_TRL_PG_DIR" || return 1
    fi

    if ! _trl_pg_as_owner "$bin/initdb" -D "$_TRL_PG_DIR/data" --auth=trust -U postgres -E UTF8 \
        --no-locale --no-sync >"$_TRL_PG_DIR/initdb.log" 2>&1; then
        _trl_pg_say "initdb failed:"
        cat "$_TRL_PG_DIR/initdb.log" >&2
        return 1
    fi

    local tls_opts=
    if _trl_pg_tls; then
        tls_opts="-c ssl=on -c ssl_cert_file=$_TRL_PG_DIR/tls/server.crt -c ssl_key_file=$_TRL_PG_DIR/tls/server.key"
    fi

    # A port can be taken between choosing and binding it: retry a few times.
    for attempt in 1 2 3 4 5; do
        port=$(_trl_pg_free_port) || { _trl_pg_say "found no free port on 127.0.0.1"; return 1; }
        if _trl_pg_as_owner "$bin/pg_ctl" -D "$_TRL_PG_DIR/data" -l "$_TRL_PG_DIR/postgres.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$_TRL_PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 $tls_opts" \
            start >/dev/null 2>&1; then
            version=$("$bin/pg_ctl" --version 2>/dev/null | sed -n "s/.*(PostgreSQL) \([0-9.]*\).*/\1/p")
            export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
            if [[ -n "$tls_opts" ]]; then
                if _trl_pg_as_owner "$bin/psql" -h "$_TRL_PG_DIR" -p "$port" -U postgres -d postgres -q \
                    -c "CREATE ROLE tls_only LOGIN SUPERUSER" >/dev/null 2>&1; then
                    export TEST_DATABASE_CA="$_TRL_PG_DIR/tls/ca.crt"
                    export TEST_DATABASE_OTHER_CA="$_TRL_PG_DIR/tls/other-ca.crt"
                else
                    _trl_pg_say "creating the tls_only role failed; the database-TLS tests will fail"
                fi
            fi
            _trl_pg_say "PostgreSQL ${version:-?} listening on 127.0.0.1:$port ($TEST_DATABASE_URL, data in $_TRL_PG_DIR; stopped when this shell exits)"
            return 0
        fi
        _trl_pg_say "starting PostgreSQL on port $port failed (attempt $attempt):"
        tail -n 5 "$_TRL_PG_DIR/postgres.log" >&2 2>/dev/null
        if [[ -n "$tls_opts" ]] && grep -qiE 'ssl|certificate|private key' "$_TRL_PG_DIR/postgres.log" 2>/dev/null; then
            # The TLS set-up is what failed: the other tests still need a server.
            _trl_pg_say "starting again without TLS; the database-TLS tests will fail"
            tls_opts=
        fi
    done
    return 1
}

if [[ -z "${TEST_DATABASE_URL:-}" ]]; then
    if ! _trl_pg_start; then
        _trl_pg_say "could not start PostgreSQL for the tests"
        _trl_pg_stop
        if [[ -n "${_TRL_PG_TRAP_SET:-}" ]]; then
            # Put back the caller's EXIT trap as it was.
            if [[ -n "$_TRL_PG_PREV_EXIT_TRAP" ]]; then
                # shellcheck disable=SC2064
                trap "$_TRL_PG_PREV_EXIT_TRAP" EXIT
            else
                trap - EXIT
            fi
        fi
        false
    fi
fi
