#!/usr/bin/env bash
# Verification benchmark, release build, in one run on the same rows: `dbsync --verify` of
# an equal copy of the 1M-row fixture beside a full replace of it, into SQLite and into the
# TLS MariaDB; then a `strategy = merge` with `deletes = apply` after 1% updates, 0.1%
# inserts and 0.1% deletes spread over the table, beside a full replace (--full-refresh) of
# the same table, each followed by --verify and an independent check (count and sums
# computed by each database itself).
#
#   bash scripts/bench_verify.sh            # 1,000,000 rows, each row the median of 3 tries
#   ROWS=200000 TRIES=1 bash scripts/bench_verify.sh
#   UPDATES=recent bash scripts/bench_verify.sh   # the 1% updated are the newest rows
set -euo pipefail
umask 077   # the configs it writes hold the bench password
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ROWS="${ROWS:-1000000}"
TRIES="${TRIES:-3}"
UPDATES="${UPDATES:-spread}"
OUT="$ROOT/bench-out/verify"
mkdir -p "$OUT"

bench_servers
trap settle_restore EXIT
src_sql() { mariadb -h127.0.0.1 -uroot "$@"; }

have=$(src_sql -N -e "SELECT COUNT(*) FROM dbsync_bench.vehicles_stock" 2>/dev/null || echo 0)
if [ "$have" != "$ROWS" ]; then
    say "seeding dbsync_bench.vehicles_stock with $ROWS rows"
    seed_fixture dbsync_bench "$ROWS"
fi
say "seeding dbsync_vmerge.vehicles_stock ($ROWS rows, an indexed updated_at)"
src_sql -e "DROP DATABASE IF EXISTS dbsync_vmerge"
seed_fixture dbsync_vmerge "$ROWS"
src_sql dbsync_vmerge -e "ALTER TABLE vehicles_stock ADD updated_at DATETIME(6) NOT NULL DEFAULT '2024-01-01',
    ADD KEY by_updated (updated_at);
  UPDATE vehicles_stock SET updated_at = '2024-01-01' + INTERVAL id SECOND;"
say "building dbsync (release)"
cargo build --release --quiet --bin dbsync

bench_config dbsync_bench "$OUT/verify.db" bench_verify > "$OUT/config.ini"
bench_config dbsync_vmerge "$OUT/merge.db" bench_vmerge "strategy = merge
incremental_key = updated_at
deletes = apply" > "$OUT/merge.ini"
RESULTS="$OUT/results.tsv"
: > "$RESULTS"
D=target/release/dbsync

say "an equal copy: --verify beside a full replace"
rm -f "$OUT/verify.db"
$D -q --config "$OUT/config.ini"
run "replace -> SQLite" $D -q --config "$OUT/config.ini"
run "--verify, SQLite" $D -q --config "$OUT/config.ini" --verify
$D -q --config "$OUT/config.ini" --target azure
run "replace -> TLS MariaDB" $D -q --config "$OUT/config.ini" --target azure
run "--verify, TLS MariaDB" $D -q --config "$OUT/config.ini" --target azure --verify

# 1% updated (every 100th row, or under UPDATES=recent the newest 1%) and 0.1% deleted,
# spread over the table, and 0.1% inserted above the largest id, as an AUTO_INCREMENT key
# gives them (round $1).
churn() {
    local r="$1" n=$((ROWS / 1000)) which="id % 100 = $1"
    [ "$UPDATES" = recent ] && which="id > (SELECT MAX(id) - $((ROWS / 100)) FROM vehicles_stock)"
    src_sql dbsync_vmerge -e "UPDATE vehicles_stock SET pvp_api = pvp_api + 1, kms = kms + $r,
        updated_at = '2030-01-01' + INTERVAL $r YEAR + INTERVAL id MICROSECOND WHERE $which;
      DELETE FROM vehicles_stock WHERE id % 1000 = 500 + $r;
      SET @top = (SELECT MAX(id) FROM vehicles_stock);
      INSERT INTO vehicles_stock (id, marca, modelo, vin, notas, updated_at)
        SELECT @top + seq, 'Nuevo', 'Modelo', LPAD(seq, 17, '0'), 'nuevo',
               '2030-06-01' + INTERVAL $r YEAR + INTERVAL seq MICROSECOND FROM seq_1_to_$n;"
}
# The same count and sums, computed by the source and by the target itself.
check() {
    local want got
    want=$(src_sql -N dbsync_vmerge -e "SELECT COUNT(*), SUM(id), ROUND(SUM(kms), 1), ROUND(SUM(pvp_api), 2) FROM vehicles_stock" | tr '\t' ' ')
    if [ "$1" = sqlite ]; then
        got=$(sqlite3 "$OUT/merge.db" "SELECT count(*), sum(id), printf('%.1f', sum(kms)), printf('%.2f', sum(pvp_api)) FROM vehicles_stock" | tr '|' ' ')
    else
        got=$(tls_sql -N bench_vmerge -e "SELECT COUNT(*), SUM(id), ROUND(SUM(kms), 1), ROUND(SUM(pvp_api), 2) FROM vehicles_stock" | tr '\t' ' ')
    fi
    [ "$want" = "$got" ] && say "independent check ($1): equal ($want)" || { say "independent check ($1): source $want, target $got"; return 1; }
}

round=0
for target in local_sqlite azure; do
    name=SQLite; [ $target = azure ] && name="TLS MariaDB"
    rm -f "$OUT/merge.db"
    $D -q --config "$OUT/merge.ini" --target $target --full-refresh
    BEFORE_TRY='round=$((round + 1)); churn $round' \
        run "merge + deletes = apply -> $name" $D -q --config "$OUT/merge.ini" --target $target
    $D -q --config "$OUT/merge.ini" --target $target --verify --summary-json "$OUT/verify-$target.json"
    say "--verify after the merges ($name): $(cut -c1-200 "$OUT/verify-$target.json")"
    check "$( [ $target = azure ] && echo mysql || echo sqlite )"
    run "full replace (--full-refresh) -> $name" $D -q --config "$OUT/merge.ini" --target $target --full-refresh
done

say "results ($ROWS rows, updates: $UPDATES; wall s, peak MB)"
while IFS=$'\t' read -r name secs kb; do
    printf '  %-44s %8s s %6s MB\n' "$name" "$secs" "$(( ${kb/-/0} / 1024 ))"
done < "$RESULTS"
