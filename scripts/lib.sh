# Shared by the project's scripts: make sure the tools and servers the job and the tests
# need are there. Every function is idempotent.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVERS="$ROOT/.test-servers"
# TEST_TLS_PORT picks another port (with its own data directory per checkout).
TLS_PORT="${TEST_TLS_PORT:-3307}"

say() { printf '%s\n' "== $*" >&2; }

apt_install() {
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_tools() {
    apt_install mariadb-server mariadb-client openssl
    command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup) first" >&2; exit 1; }
}

# The local MariaDB at 127.0.0.1:3306, root with an empty password (the source server).
ensure_mariadb() {
    if mariadb-admin -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1; then return 0; fi
    say "starting MariaDB on 127.0.0.1:3306"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 60); do
        mariadb-admin -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "MariaDB did not start on 127.0.0.1:3306" >&2; exit 1
}

# Seeds database $1 with $2 rows of the benchmark fixture table vehicles_stock.
# The benches' dbsync config, on stdout: the fixture's table of DATABASE on the local
# MariaDB, into the SQLite file FILE or the TLS MariaDB's TARGET_DATABASE (the bench user,
# its CA verified). GENERAL and EXTERNAL: more lines for [general] and [external_db].
# It holds the bench password: write it where only this user reads.
#   bench_config DATABASE FILE TARGET_DATABASE [GENERAL] [EXTERNAL]
bench_config() {
    cat <<CFG
[general]
default_target = local_sqlite
target_argument_enabled = true
fallback_to_local_source_on_failure = false
${4:-}
[external_db]
host = 127.0.0.1
port = 3306
user = root
password =
database = $1
query = SELECT * FROM vehicles_stock
ssl_mode = disabled
${5:-}
[local_db]
db_path = $2
table_name = vehicles_stock
[azure_mysql_db]
host = localhost
port = $TLS_PORT
user = bench
password = bench
database = $3
table_name = vehicles_stock
ssl_mode = verify_identity
ssl_ca = $SERVERS/tls/certs/ca.pem
CFG
}

seed_fixture() {
    local db="$1" rows="$2"
    mariadb -h127.0.0.1 -uroot -e "CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4"
    sed "s/@ROWS@/$rows/" "$ROOT/scripts/fixtures/vehicles_stock.sql" | mariadb -h127.0.0.1 -uroot "$db" >/dev/null
}

# A second MariaDB standing in for Azure Database for MySQL: its own data directory and
# port, a private CA, TLS 1.2+ only and require_secure_transport=ON. Certificates are
# made once under .test-servers/tls/certs (server for localhost and 127.0.0.1; a client
# certificate for a REQUIRE X509 user; a second, unrelated CA for refusal tests).
# Unlike the source server it runs in time zone +02:00 (a query's CURDATE()/NOW() must
# follow the server's zone, as in the mysql client) and with the old implicit TIMESTAMP
# defaults (explicit_defaults_for_timestamp=OFF), which target DDL must not trip over.
ensure_tls_mariadb() {
    local dir="$SERVERS/tls" certs="$SERVERS/tls/certs"
    mkdir -p "$certs"
    if [ ! -f "$certs/server-cert.pem" ]; then
        say "making a private CA and certificates in $certs"
        (
            cd "$certs"
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=dbsync test CA" \
                -keyout ca-key.pem -out ca.pem 2>/dev/null
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=unrelated CA" \
                -keyout other-ca-key.pem -out other-ca.pem 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
                -keyout server-key.pem -out server.csr 2>/dev/null
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
                -days 3650 -extfile server.ext -out server-cert.pem 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -subj "/CN=dbsync_x509" \
                -keyout client-key.pem -out client.csr 2>/dev/null
            printf 'extendedKeyUsage=clientAuth\n' > client.ext
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
                -days 3650 -extfile client.ext -out client-cert.pem 2>/dev/null
            # A bundle with several roots, as Azure's rotation needs.
            cat other-ca.pem ca.pem > bundle.pem
            chmod 644 ./*.pem
        )
    fi
    if mariadb-admin --protocol=socket -S "$dir/mysqld.sock" -uroot ping >/dev/null 2>&1; then
        return 0
    fi
    if [ ! -d "$dir/data/mysql" ]; then
        say "initialising the TLS MariaDB data directory"
        mariadb-install-db --no-defaults --user=root --datadir="$dir/data" \
            --auth-root-authentication-method=socket >/dev/null
    fi
    say "starting the TLS-only MariaDB on 127.0.0.1:$TLS_PORT"
    # 127.0.0.2 is bound too, so a test can reach it by an address not in the certificate.
    setsid /usr/sbin/mariadbd --no-defaults --user=root --datadir="$dir/data" \
        --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
        --port="$TLS_PORT" --bind-address=127.0.0.1,127.0.0.2 --skip-name-resolve \
        --ssl-ca="$certs/ca.pem" --ssl-cert="$certs/server-cert.pem" --ssl-key="$certs/server-key.pem" \
        --tls-version=TLSv1.2,TLSv1.3 --require-secure-transport=ON \
        --innodb-buffer-pool-size=512M --innodb-flush-log-at-trx-commit=2 \
        --max-allowed-packet=64M --local-infile=1 \
        --default-time-zone=+02:00 --explicit-defaults-for-timestamp=OFF </dev/null >/dev/null 2>&1 &
    for _ in $(seq 1 60); do
        if mariadb-admin --protocol=socket -S "$dir/mysqld.sock" -uroot ping >/dev/null 2>&1; then
            # The dbsync user's password holds ; # = " \ ' on purpose: it must work as is.
            mariadb --protocol=socket -S "$dir/mysqld.sock" -uroot <<'SQL'
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
CREATE USER IF NOT EXISTS 'dbsync'@'%' IDENTIFIED BY 'Azure;#=pa"ss\\w''rd';
GRANT ALL PRIVILEGES ON *.* TO 'dbsync'@'%';
CREATE USER IF NOT EXISTS 'dbsync_x509'@'%' REQUIRE X509;
GRANT ALL PRIVILEGES ON *.* TO 'dbsync_x509'@'%';
CREATE USER IF NOT EXISTS 'dbsync_ro'@'%' IDENTIFIED BY 'readonly';
GRANT SELECT, INSERT ON *.* TO 'dbsync_ro'@'%';
SQL
            return 0
        fi
        sleep 1
    done
    echo "the TLS MariaDB did not start; see $dir/error.log" >&2; tail -20 "$dir/error.log" >&2; exit 1
}

# settle: lets both servers write out their dirty InnoDB pages before a timed run, so no run
# shares the CPU and disk with the flushing of the one before it (a load of 1M rows leaves
# thousands of pages to flush, which the server otherwise does at 200 pages/s for a while).
# Each server's own settings are read once per script and put back after every settle, and
# by settle_restore (the benchmark scripts' EXIT trap) if a settle was cut short.
declare -A SETTLE_SAVED=()
settle_sql() { if [ "$1" = local ]; then mariadb -h127.0.0.1 -uroot "${@:2}"; else tls_sql "${@:2}"; fi; }
settle_restore() {
    local server
    for server in "${!SETTLE_SAVED[@]}"; do
        local pct lwm cap capmax
        read -r pct lwm cap capmax <<< "${SETTLE_SAVED[$server]}"
        settle_sql "$server" -e "SET GLOBAL innodb_max_dirty_pages_pct = $pct;
            SET GLOBAL innodb_max_dirty_pages_pct_lwm = $lwm; SET GLOBAL innodb_io_capacity = $cap;
            SET GLOBAL innodb_io_capacity_max = $capmax" || true
    done
}
settle() {
    local server
    for server in local tls; do
        if [ -z "${SETTLE_SAVED[$server]:-}" ]; then
            SETTLE_SAVED[$server]=$(settle_sql "$server" -N -e "SELECT @@innodb_max_dirty_pages_pct,
                @@innodb_max_dirty_pages_pct_lwm, @@innodb_io_capacity, @@innodb_io_capacity_max") || continue
        fi
        settle_sql "$server" -e "SET GLOBAL innodb_io_capacity_max = 40000; SET GLOBAL innodb_io_capacity = 20000;
                 SET GLOBAL innodb_max_dirty_pages_pct = 0"
        local i dirty=0
        for i in $(seq 1 240); do
            dirty=$(settle_sql "$server" -N -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | cut -f2)
            [ "${dirty:-0}" -lt 50 ] && break
            sleep 0.25
        done
        [ "${dirty:-0}" -lt 50 ] || say "settle: the $server server still has $dirty dirty pages after 60 s"
    done
    settle_restore
}

# run NAME COMMAND...: times the command (wall seconds and peak RSS, children included) into
# the benchmark's $RESULTS table, its output into $OUT/last.log; both servers settled first.
# With TRIES=n it runs n times (BEFORE_TRY, if set, is evaluated before each) and records the
# median wall time (the lower middle one for an even n) and the largest peak RSS: on 2 shared
# cores a run of a few seconds varies by about 5% from one try to the next.
run() {
    local name="$1"; shift
    local tries="${TRIES:-1}" i times=()
    for ((i = 1; i <= tries; i++)); do
        [ -n "${BEFORE_TRY:-}" ] && eval "$BEFORE_TRY"
        settle
        sync
        if ! /usr/bin/time -f "%e %M" -o "$OUT/time.txt" "$@" > "$OUT/last.log" 2>&1; then
            printf '%s\tfailed\t-\n' "$name" >> "$RESULTS"
            say "$name failed:"; tail -5 "$OUT/last.log" >&2
            return 0
        fi
        times+=("$(cat "$OUT/time.txt")")
    done
    local secs kb all
    all=$(printf '%s\n' "${times[@]}" | sort -n | cut -d' ' -f1 | paste -sd' ')
    secs=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (tries + 1) / 2 ))p" | cut -d' ' -f1)
    kb=$(printf '%s\n' "${times[@]}" | cut -d' ' -f2 | sort -n | tail -1)   # the largest
    printf '%s\t%s\t%s\n' "$name" "$secs" "$kb" >> "$RESULTS"
    if [ "$tries" -gt 1 ]; then
        say "$name: $secs s (median of $all), $((kb / 1024)) MB"
    else
        say "$name: $secs s, $((kb / 1024)) MB"
    fi
}

# The tools and both servers a benchmark needs, with the TLS server's `bench` user.
tls_sql() { mariadb --protocol=socket -S "$SERVERS/tls/mysqld.sock" -uroot "$@"; }
bench_servers() {
    ensure_tools
    apt_install time sqlite3
    ensure_mariadb
    ensure_tls_mariadb
    tls_sql -e "CREATE USER IF NOT EXISTS 'bench'@'%' IDENTIFIED BY 'bench'; GRANT ALL ON *.* TO 'bench'@'%';"
}
