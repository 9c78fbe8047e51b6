#!/usr/bin/env bash
# Incremental benchmark: a copy of the benchmark fixture with an indexed
# `updated_at DATETIME(6)` (each row its own value); a full load, then 1% of the rows
# updated and 0.1% inserted at the source, then a `strategy = merge` run; into SQLite and
# into the TLS MariaDB. Prints the merge run's wall time beside a full replace of the same
# table (the same config with --full-refresh), each measured after the changes; then the
# same two runs into the TLS MariaDB through the 20 ms latency proxy.
#
#   bash scripts/bench_merge.sh            # 1,000,000 rows, each row the median of 3 tries
#   ROWS=200000 bash scripts/bench_merge.sh
#   UPDATES=recent bash scripts/bench_merge.sh       # the 1% updated are the newest rows
#       (default spread: every 100th row, so nearly every page of the table changes)
#   SOURCE_POOL_MB=512 bash scripts/bench_merge.sh   # the source's InnoDB buffer pool
#       raised for the run (and put back after): the merge's reads are random lookups,
#       which miss the default 128 MB pool once the table outgrows it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ROWS="${ROWS:-1000000}"
TRIES="${TRIES:-3}"   # each row: the median of this many tries (a merge try after its own changes)
UPDATES="${UPDATES:-spread}"
OUT="$ROOT/bench-out/merge"
mkdir -p "$OUT"

bench_servers
src_sql() { mariadb -h127.0.0.1 -uroot dbsync_merge "$@"; }
POOL_BEFORE=$(mariadb -h127.0.0.1 -uroot -N -e "SELECT @@innodb_buffer_pool_size")
PROXY=
cleanup() {
    [ -n "$PROXY" ] && kill "$PROXY" 2>/dev/null
    settle_restore
    [ -n "${SOURCE_POOL_MB:-}" ] && mariadb -h127.0.0.1 -uroot -e "SET GLOBAL innodb_buffer_pool_size = $POOL_BEFORE"
    return 0
}
trap cleanup EXIT
if [ -n "${SOURCE_POOL_MB:-}" ]; then
    mariadb -h127.0.0.1 -uroot -e "SET GLOBAL innodb_buffer_pool_size = $((SOURCE_POOL_MB * 1048576))"
fi

say "seeding dbsync_merge.vehicles_stock with $ROWS rows and an indexed updated_at"
seed_fixture dbsync_merge "$ROWS"
src_sql -e "ALTER TABLE vehicles_stock ADD updated_at DATETIME(6) NOT NULL DEFAULT '2024-01-01',
    ADD KEY by_updated (updated_at);
  UPDATE vehicles_stock SET updated_at = '2024-01-01' + INTERVAL id SECOND;"
say "building dbsync (release)"
cargo build --release --quiet --bin dbsync --example latency_proxy

bench_config dbsync_merge "$OUT/merge.db" bench_merge "strategy = merge
incremental_key = updated_at" > "$OUT/config.ini"
chmod 600 "$OUT/config.ini"

RESULTS="$OUT/results.tsv"
: > "$RESULTS"

# 1% updated (a new updated_at, above every earlier round's) and 0.1% inserted; the
# updated rows spread over the whole table, or the newest 1%.
change() {
    local round="$1" inserted=$((ROWS / 1000)) which="id % 100 = $1"
    [ "$UPDATES" = recent ] && which="id > $((ROWS - ROWS / 100)) AND id <= $ROWS"
    src_sql -e "UPDATE vehicles_stock SET pvp_api = pvp_api + 1, kms = kms + $round,
        updated_at = '2030-01-01' + INTERVAL $round YEAR + INTERVAL id MICROSECOND
        WHERE $which;
      INSERT INTO vehicles_stock (id, marca, modelo, vin, notas, updated_at)
        SELECT $ROWS * (2 + $round) + seq, 'Nuevo', 'Modelo $round', LPAD(seq, 17, '0'), 'nuevo',
               '2030-06-01' + INTERVAL $round YEAR + INTERVAL seq MICROSECOND
        FROM seq_1_to_$inserted;"
}

# A copy of the SQLite target with a staging table of 1% changed rows (every 100th) and
# 0.1% new ones, and the statements that apply them, for the sqlite3 shell alone.
stage_floor() {
    rm -f "$OUT/floor.db" "$OUT/floor.db-wal" "$OUT/floor.db-shm"
    cp "$OUT/merge.db" "$OUT/floor.db"
    local cols="marca, modelo, color, tipo_transmision, kms, pvp_api, fecha_matriculacion, vin, disponible, notas, updated_at"
    sqlite3 "$OUT/floor.db" > /dev/null <<SQL
PRAGMA journal_mode = wal;
CREATE TABLE s AS SELECT * FROM vehicles_stock WHERE id % 100 = 50;
UPDATE s SET pvp_api = pvp_api + 1, kms = kms + 1, updated_at = '2090-01-01 00:00:00.' || printf('%06d', id % 1000000);
INSERT INTO s SELECT id + 90000000, $cols FROM vehicles_stock WHERE id <= $((ROWS / 1000));
SQL
    local set="" c
    for c in ${cols//,/ }; do set="$set${set:+, }$c = s.$c"; done
    cat > "$OUT/floor.sql" <<SQL
PRAGMA cache_size = -16384;
BEGIN IMMEDIATE;
UPDATE vehicles_stock SET $set FROM s WHERE vehicles_stock.id = s.id;
INSERT INTO vehicles_stock SELECT * FROM s WHERE NOT EXISTS (SELECT 1 FROM vehicles_stock v WHERE v.id = s.id);
DROP TABLE s;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
}

# Each merge try reads its own round of changes, newer than every earlier one.
ROUND=0
next_change() { ROUND=$((ROUND + 1)); change "$ROUND"; }

# The floor any tool pays at the source: the changed rows alone, read by the mariadb client
# (the newest round's, through the same index the merge's read uses).
NEWEST="'2030-01-01' + INTERVAL (SELECT YEAR(MAX(updated_at)) - 2030 FROM vehicles_stock) YEAR"
BEFORE_TRY=next_change run "source alone: the changed rows, mariadb client" \
    sh -c "mariadb -h127.0.0.1 -uroot dbsync_merge -e \"SELECT * FROM vehicles_stock WHERE updated_at >= $NEWEST\" > /dev/null"

for target in local_sqlite azure; do
    say "$target: first (full) load"
    rm -f "$OUT/merge.db"
    tls_sql -e "DROP DATABASE IF EXISTS bench_merge"
    target/release/dbsync -q --config "$OUT/config.ini" --target "$target"
    target/release/dbsync -q --config "$OUT/config.ini" --target "$target" --full-refresh
    BEFORE_TRY=next_change run "$target: merge (1% updated, 0.1% inserted)" \
        target/release/dbsync -q --config "$OUT/config.ini" --target "$target" --summary-json "$OUT/$target-merge.json"
    cat "$OUT/$target-merge.json"
    if [ "$target" = local_sqlite ]; then
        # The floor in SQLite itself: the sqlite3 shell applies a round's worth of staged
        # rows (the same UPDATE ... FROM and INSERT as dbsync, on a copy of the target) and
        # commits, with dbsync's settings (64 KiB pages, WAL, 16 MiB cache).
        BEFORE_TRY=stage_floor run "sqlite3 alone: apply 1% + 0.1% and commit" \
            sh -c "sqlite3 '$OUT/floor.db' < '$OUT/floor.sql' > /dev/null"
    fi
    run "$target: full replace (--full-refresh)" \
        target/release/dbsync -q --config "$OUT/config.ini" --target "$target" --full-refresh
    run "$target: merge, nothing new" \
        target/release/dbsync -q --config "$OUT/config.ini" --target "$target"
done

say "azure through a 20 ms round-trip link (the latency proxy, 10 ms each way)"
WAN_PORT="${WAN_PORT:-3399}"
target/release/examples/latency_proxy "$WAN_PORT" "$TLS_PORT" 10 2>/dev/null &
PROXY=$!
sleep 0.5
sed -e "s/^host = localhost$/host = 127.0.0.1/" -e "s/^port = $TLS_PORT$/port = $WAN_PORT/" \
    "$OUT/config.ini" > "$OUT/config-wan.ini"
chmod 600 "$OUT/config-wan.ini"
BEFORE_TRY=next_change run "azure, 20 ms RTT: merge (1% updated, 0.1% inserted)" \
    target/release/dbsync -q --config "$OUT/config-wan.ini" --target azure
run "azure, 20 ms RTT: full replace (--full-refresh)" \
    target/release/dbsync -q --config "$OUT/config-wan.ini" --target azure --full-refresh

say "checking both targets against the source"
want=$(src_sql -N -e "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, pvp_api, kms, updated_at))) FROM vehicles_stock")
got_mysql=$(tls_sql -N bench_merge -e "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, pvp_api, kms, updated_at))) FROM vehicles_stock")
echo "source: $want"; echo "azure:  $got_mysql"

echo
pool=$(mariadb -h127.0.0.1 -uroot -N -e "SELECT @@innodb_buffer_pool_size DIV 1048576")
echo "source buffer pool: $pool MB; table: $(src_sql -N -e "SELECT (data_length + index_length) DIV 1048576 FROM information_schema.TABLES WHERE table_schema = 'dbsync_merge'") MB"
printf '%-48s %10s %10s\n' "run ($ROWS rows, updates: $UPDATES)" "wall s" "peak MB"
while IFS=$'\t' read -r name secs kb; do
    if [ "$secs" = failed ]; then printf '%-48s %10s\n' "$name" failed; continue; fi
    printf '%-48s %10s %10s\n' "$name" "$secs" "$((kb / 1024))"
done < "$RESULTS"
