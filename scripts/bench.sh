#!/usr/bin/env bash
# End-to-end benchmark: seeds ROWS rows (default 1,000,000) of the benchmark fixture, then,
# in one run on the same rows, times dbsync -> SQLite and dbsync -> the TLS MariaDB beside
# the original pandas + SQLAlchemy stack and DuckDB (mysql/sqlite extensions), plus the
# limits: a connectorx read-only pass and LOAD DATA LOCAL INFILE. Prints one table.
#
#   bash scripts/bench.sh                 # 1,000,000 rows, every tool
#   ROWS=4000000 ONLY=dbsync bash scripts/bench.sh
#   PARTITIONS=2 bash scripts/bench.sh    # dbsync with [external_db] partitions = 2
#   BEFORE=path/to/older/dbsync bash scripts/bench.sh   # also time an earlier build
#   BIG=0 bash scripts/bench.sh           # skip the 400 rows of 1 MiB
#   MANY=0 bash scripts/bench.sh          # skip the job of 28 tables (scripts/seed_app.sh)
#   TRIES=5 bash scripts/bench.sh         # dbsync and LOAD DATA rows: the median of 5 tries
#   VERIFY=0 bash scripts/bench.sh        # skip --verify and the merge with deletes
#                                         # (scripts/bench_verify.sh, run last)
set -euo pipefail
umask 077   # the configs it writes hold the bench password
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ROWS="${ROWS:-1000000}"
ONLY="${ONLY:-}"          # dbsync: only dbsync and the limits
PARTITIONS="${PARTITIONS:-1}"
BEFORE="${BEFORE:-}"
BIG="${BIG:-1}"
MANY="${MANY:-1}"        # 0: skip the job of many tables
TRIES="${TRIES:-3}"   # dbsync's rows and the LOAD DATA limits: the median of this many tries
VERIFY="${VERIFY:-1}"    # 0: skip the verification rows
PEER_TRIES=1          # the peers: one try each (pandas takes a minute)
OUT="$ROOT/bench-out"
CERTS="$SERVERS/tls/certs"
mkdir -p "$OUT"

bench_servers
trap settle_restore EXIT

if [ -z "$ONLY" ] && [ ! -x .bench-venv/bin/python ]; then
    say "installing the peers (pandas, SQLAlchemy, mysql-connector-python, DuckDB 1.5) in .bench-venv"
    python3 -m venv .bench-venv
    .bench-venv/bin/pip install -q "duckdb==1.5.*" "duckdb-extension-mysql-scanner==1.5.*" \
        "duckdb-extension-sqlite-scanner==1.5.*" pandas sqlalchemy mysql-connector-python
fi

have=$(mariadb -h127.0.0.1 -uroot -N -e "SELECT COUNT(*) FROM dbsync_bench.vehicles_stock" 2>/dev/null || echo 0)
if [ "$have" != "$ROWS" ]; then
    say "seeding dbsync_bench.vehicles_stock with $ROWS rows"
    seed_fixture dbsync_bench "$ROWS"
fi
say "building dbsync (release)"
cargo build --release --quiet --bin dbsync --example read_only --example latency_proxy

bench_config dbsync_bench "$OUT/dbsync.db" bench_dbsync "" "partition_column = id
partitions = $PARTITIONS" > "$OUT/config.ini"

chmod 600 "$OUT/config.ini"
RESULTS="$OUT/results.tsv"
: > "$RESULTS"
# run NAME COMMAND...: wall seconds and peak RSS of the command (and its children).

say "MySQL -> SQLite"
# Every tool is timed replacing its table in a file that already went through two runs:
# a nightly job's steady state (the first replace after a file is created also grows it).
rm -f "$OUT/dbsync.db"
for _ in 1 2; do target/release/dbsync -q --config "$OUT/config.ini"; done
run "dbsync -> SQLite" target/release/dbsync -q --config "$OUT/config.ini"
# The cost of WAL (the default, so readers keep reading during a load) over DELETE.
# Only [local_db]'s table_name (the first): journal_mode is not a key of [azure_mysql_db].
sed '0,/^table_name = vehicles_stock$/s//table_name = vehicles_stock\njournal_mode = delete/' "$OUT/config.ini" > "$OUT/config-delete.ini"
rm -f "$OUT/dbsync-delete.db"
sed -i "s#$OUT/dbsync.db#$OUT/dbsync-delete.db#" "$OUT/config-delete.ini"
chmod 600 "$OUT/config-delete.ini"
for _ in 1 2; do target/release/dbsync -q --config "$OUT/config-delete.ini"; done
run "dbsync -> SQLite (journal_mode = delete)" target/release/dbsync -q --config "$OUT/config-delete.ini"
if [ -n "$BEFORE" ]; then
    rm -f "$OUT/before.db"
    sed "s#$OUT/dbsync.db#$OUT/before.db#" "$OUT/config.ini" > "$OUT/config-before.ini"
    for _ in 1 2; do "$BEFORE" -q --config "$OUT/config-before.ini"; done
    run "earlier build -> SQLite" "$BEFORE" -q --config "$OUT/config-before.ini"
fi
if [ -z "$ONLY" ]; then
    rm -f "$OUT/duckdb.db"
    for _ in 1 2; do .bench-venv/bin/python scripts/bench/duckdb_copy.py sqlite dbsync_bench "$OUT/duckdb.db" 2>/dev/null; done
    TRIES=$PEER_TRIES run "DuckDB 1.5 -> SQLite" .bench-venv/bin/python scripts/bench/duckdb_copy.py sqlite dbsync_bench "$OUT/duckdb.db"
    rm -f "$OUT/pandas.db"
    TRIES=$PEER_TRIES run "pandas + SQLAlchemy -> SQLite" .bench-venv/bin/python scripts/bench/pandas_copy.py sqlite dbsync_bench "$OUT/pandas.db"
fi

say "MySQL -> TLS MariaDB"
target/release/dbsync -q --config "$OUT/config.ini" --target azure   # a previous table to replace
run "dbsync -> TLS MariaDB" target/release/dbsync -q --config "$OUT/config.ini" --target azure
if [ -n "$BEFORE" ]; then
    sed 's/^database = bench_dbsync$/database = bench_before/' "$OUT/config.ini" > "$OUT/config-before-azure.ini"
    "$BEFORE" -q --config "$OUT/config-before-azure.ini" --target azure
    run "earlier build -> TLS MariaDB" "$BEFORE" -q --config "$OUT/config-before-azure.ini" --target azure
fi
if [ -z "$ONLY" ]; then
    tls_sql -e "DROP DATABASE IF EXISTS bench_duckdb; CREATE DATABASE bench_duckdb CHARACTER SET utf8mb4;
        DROP DATABASE IF EXISTS bench_pandas; CREATE DATABASE bench_pandas CHARACTER SET utf8mb4"
    TRIES=$PEER_TRIES run "DuckDB 1.5 -> TLS MariaDB" .bench-venv/bin/python scripts/bench/duckdb_copy.py mysql dbsync_bench "$CERTS/ca.pem"
    TRIES=$PEER_TRIES run "pandas to_sql(chunksize=20000) -> TLS MariaDB" .bench-venv/bin/python scripts/bench/pandas_copy.py mysql dbsync_bench "$CERTS/ca.pem"
fi

say "MySQL -> TLS MariaDB through a 20 ms round-trip link (a proxy adding 10 ms each way)"
WAN_PORT="${WAN_PORT:-3399}"
target/release/examples/latency_proxy "$WAN_PORT" "$TLS_PORT" 10 2>/dev/null &
PROXY=$!
trap 'kill $PROXY 2>/dev/null || true; settle_restore' EXIT
sleep 0.5
sed -e "s/^host = localhost$/host = 127.0.0.1/" -e "s/^port = $TLS_PORT$/port = $WAN_PORT/" \
    -e 's/^database = bench_dbsync$/database = bench_wan/' "$OUT/config.ini" > "$OUT/config-wan.ini"
chmod 600 "$OUT/config-wan.ini"
target/release/dbsync -q --config "$OUT/config-wan.ini" --target azure
run "dbsync -> TLS MariaDB, 20 ms RTT (LOAD DATA)" target/release/dbsync -q --config "$OUT/config-wan.ini" --target azure
printf 'load_method = insert\n' >> "$OUT/config-wan.ini"
run "dbsync -> TLS MariaDB, 20 ms RTT (load_method = insert)" target/release/dbsync -q --config "$OUT/config-wan.ini" --target azure
if [ -n "$BEFORE" ]; then
    sed -e 's/^database = bench_wan$/database = bench_wan_before/' -e '/^load_method/d' "$OUT/config-wan.ini" > "$OUT/config-wan-before.ini"
    "$BEFORE" -q --config "$OUT/config-wan-before.ini" --target azure
    run "earlier build -> TLS MariaDB, 20 ms RTT" "$BEFORE" -q --config "$OUT/config-wan-before.ini" --target azure
fi

if [ "$MANY" = 1 ]; then
    say "a job of many tables: the 28 tables of scripts/seed_app.sh (the same $ROWS rows split in 8, and 20 application tables)"
    stock_rows="SELECT SUM(n) FROM ($(for k in 0 1 2 3 4 5 6 7; do printf 'SELECT COUNT(*) n FROM app_bench.stock_%s UNION ALL ' "$k"; done | sed 's/ UNION ALL $//')) s"
    if [ "$(mariadb -h127.0.0.1 -uroot -N -e "$stock_rows" 2>/dev/null || echo 0)" != "$ROWS" ]; then
        say "seeding app_bench (scripts/seed_app.sh)"
        bash scripts/seed_app.sh app_bench "$ROWS" | tail -1
    fi
    # The one-table config's connections, with the job's tables instead of its query.
    sed -e 's/^database = dbsync_bench$/database = app_bench/' -e '/^query = /d' \
        -e '/^partition_column = /d' -e '/^partitions = /d' -e '/^table_name = /d' \
        -e "s#$OUT/dbsync.db#$OUT/job.db#" -e 's/^database = bench_dbsync$/database = bench_job/' \
        -e 's/^\[external_db\]$/tables = *\n[external_db]/' "$OUT/config.ini" > "$OUT/config-job.ini"
    sed -e "s/^host = localhost$/host = 127.0.0.1/" -e "s/^port = $TLS_PORT$/port = $WAN_PORT/" \
        -e 's/^database = bench_job$/database = bench_job_wan/' "$OUT/config-job.ini" > "$OUT/config-job-wan.ini"
    chmod 600 "$OUT/config-job.ini" "$OUT/config-job-wan.ini"
    rm -f "$OUT/job.db"
    for _ in 1 2; do target/release/dbsync -q --config "$OUT/config-job.ini"; done
    run "dbsync job, 28 tables -> SQLite" target/release/dbsync -q --config "$OUT/config-job.ini"
    target/release/dbsync -q --config "$OUT/config-job.ini" --target azure
    run "dbsync job, 28 tables -> TLS MariaDB" target/release/dbsync -q --config "$OUT/config-job.ini" --target azure
    target/release/dbsync -q --config "$OUT/config-job-wan.ini" --target azure
    run "dbsync job, 28 tables -> TLS MariaDB, 20 ms RTT" target/release/dbsync -q --config "$OUT/config-job-wan.ini" --target azure
fi

if [ "$BIG" = 1 ]; then
    say "400 rows of 1 MiB"
    mariadb -h127.0.0.1 -uroot -e "CREATE DATABASE IF NOT EXISTS dbsync_big"
    have=$(mariadb -h127.0.0.1 -uroot -N -e "SELECT COUNT(*) FROM dbsync_big.big" 2>/dev/null || echo 0)
    if [ "$have" != 400 ]; then
        mariadb -h127.0.0.1 -uroot dbsync_big -e "DROP TABLE IF EXISTS big;
            CREATE TABLE big (id INT PRIMARY KEY, body LONGTEXT, raw LONGBLOB);
            INSERT INTO big SELECT seq, CONCAT(seq, REPEAT(CHAR(65 + seq % 26), 524288)),
                REPEAT(UNHEX(LPAD(HEX(seq % 256), 2, '0')), 524288) FROM seq_1_to_400"
    fi
    sed -e 's/^database = dbsync_bench$/database = dbsync_big/' -e 's/^query = .*/query = SELECT * FROM big/' \
        -e 's/^partition_column = id$//' -e 's/^partitions = .*$//' \
        -e "s#$OUT/dbsync.db#$OUT/big.db#" -e 's/^table_name = vehicles_stock$/table_name = big/' \
        -e 's/^database = bench_dbsync$/database = bench_big/' "$OUT/config.ini" > "$OUT/config-big.ini"
    rm -f "$OUT/big.db"
    # A table to replace in both targets first, as for the other rows.
    target/release/dbsync -q --config "$OUT/config-big.ini"
    target/release/dbsync -q --config "$OUT/config-big.ini" --target azure
    run "dbsync -> SQLite, 400 rows of 1 MiB" target/release/dbsync -q --config "$OUT/config-big.ini"
    run "dbsync -> TLS MariaDB, 400 rows of 1 MiB" target/release/dbsync -q --config "$OUT/config-big.ini" --target azure
fi

say "limits"
run "limit: connectorx read only (batches dropped)" target/release/examples/read_only "$OUT/config.ini"
# The server writes the file, so it goes where the server's user may write.
DUMP="$(mktemp -d)"; chmod 777 "$DUMP"
mariadb -h127.0.0.1 -uroot dbsync_bench -e "SELECT * INTO OUTFILE '$DUMP/rows.tsv' FROM vehicles_stock"
tls_sql -e "DROP DATABASE IF EXISTS bench_load; CREATE DATABASE bench_load; CREATE TABLE bench_load.vehicles_stock LIKE bench_dbsync.vehicles_stock"
BEFORE_TRY='tls_sql -e "TRUNCATE TABLE bench_load.vehicles_stock"' \
    run "limit: LOAD DATA LOCAL INFILE -> TLS MariaDB" mariadb -h localhost -P "$TLS_PORT" -ubench -pbench \
    --ssl-ca="$CERTS/ca.pem" --ssl-verify-server-cert --local-infile=1 bench_load \
    -e "LOAD DATA LOCAL INFILE '$DUMP/rows.tsv' INTO TABLE vehicles_stock CHARACTER SET utf8mb4"
BEFORE_TRY='tls_sql -e "TRUNCATE TABLE bench_load.vehicles_stock"' \
    run "limit: LOAD DATA LOCAL INFILE -> TLS MariaDB, 20 ms RTT" mariadb -h 127.0.0.1 -P "$WAN_PORT" -ubench -pbench \
    --ssl-ca="$CERTS/ca.pem" --ssl-verify-server-cert --local-infile=1 bench_load \
    -e "LOAD DATA LOCAL INFILE '$DUMP/rows.tsv' INTO TABLE vehicles_stock CHARACTER SET utf8mb4"
if [ -z "$ONLY" ]; then
    tls_sql -e "DROP DATABASE IF EXISTS bench_duckdb; CREATE DATABASE bench_duckdb CHARACTER SET utf8mb4"
    DUCKDB_MYSQL_PORT="$WAN_PORT" DUCKDB_MYSQL_HOST=127.0.0.1 TRIES=$PEER_TRIES run "DuckDB 1.5 -> TLS MariaDB, 20 ms RTT (180 s at most)" \
        timeout 180 .bench-venv/bin/python scripts/bench/duckdb_copy.py mysql dbsync_bench "$CERTS/ca.pem"
    say "DuckDB through the 20 ms link left $(tls_sql -N -e "SELECT COUNT(*) FROM bench_duckdb.vehicles_stock" 2>/dev/null || echo no) rows in its target table"
fi
rm -rf "$DUMP"

echo
echo "$ROWS rows of the benchmark fixture, $(nproc) cores, $(date -u +%Y-%m-%d)"
awk -F'\t' -v rows="$ROWS" '
    $1 == "dbsync -> SQLite" { base["SQLite"] = $2 }
    $1 == "dbsync -> TLS MariaDB" { base["MySQL"] = $2 }
    $1 == "dbsync -> TLS MariaDB, 20 ms RTT (LOAD DATA)" { base["WAN"] = $2 }
    { name[NR] = $1; secs[NR] = $2; kb[NR] = $3 }
    END {
        printf "| %-46s | %8s | %10s | %9s | %12s |\n", "copy", "wall s", "rows/s", "peak RSS", "× dbsync"
        printf "|%s|%s|%s|%s|%s|\n", "------------------------------------------------", "----------", "------------", "-----------", "--------------"
        for (i = 1; i <= NR; i++) {
            b = (name[i] ~ /MariaDB/) ? base["MySQL"] : base["SQLite"]
            if (name[i] ~ /20 ms/) b = base["WAN"]
            if (name[i] ~ /1 MiB/) { printf "| %-46s | %8.2f | %10s | %6.0f MB | %12s |\n", name[i], secs[i], "-", kb[i] / 1024, "-"; continue }
            if (name[i] ~ /read only/) b = base["SQLite"]
            if (secs[i] == "failed") { printf "| %-46s | %8s | %10s | %9s | %12s |\n", name[i], "failed", "-", "-", "-"; continue }
            printf "| %-46s | %8.2f | %10.0f | %6.0f MB | %12.2f |\n", name[i], secs[i], rows / secs[i], kb[i] / 1024, secs[i] / b
        }
    }' "$RESULTS"

# The verification rows: --verify of an equal copy and a merge with deletes = apply, each
# beside a full replace of the same rows (their own table, see scripts/bench_verify.sh).
if [ "$VERIFY" = 1 ]; then
    echo
    ROWS="$ROWS" TRIES="$TRIES" bash "$ROOT/scripts/bench_verify.sh"
fi
