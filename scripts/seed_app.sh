#!/usr/bin/env bash
# Seeds the source database of a job of many tables (`[general] tables = *`).
#
#   scripts/seed_app.sh [DB] [ROWS]                    # default app_src, 1,000,000
#   APP_SCHEMA=library scripts/seed_app.sh app_src2    # the second, smaller schema
#
# Drops and recreates the database DB, then prints one line per table (name, rows) and a
# last line "DB: N tables, M rows (S s)".
#
# APP_SCHEMA=shop (default): the 20 tables of scripts/fixtures/app_schema.sql, about 100,000
# rows at ROWS=1,000,000 (their sizes scale with ROWS, with a floor), plus stock_0 ...
# stock_7: the ROWS rows of the benchmark fixture scripts/fixtures/vehicles_stock.sql (same
# columns, primary key and values), split by id % 8 (stock_K holds the ids with id % 8 = K;
# 125,000 each at 1,000,000). 28 tables, 1.1M rows.
# APP_SCHEMA=library: the 11 tables of scripts/fixtures/app2_schema.sql (about 38,000 rows
# at ROWS=1,000,000), no stock tables.
#
# Server: MYSQL_HOST (127.0.0.1), MYSQL_PORT (3306), MYSQL_USER (root), MYSQL_PWD (the
# client reads it; empty), and MYSQL_OPTS for further client options, e.g.
# MYSQL_OPTS="--ssl-ca=.test-servers/tls/certs/ca.pem" for a server that requires TLS.
# Needs MariaDB's sequence engine (seq_1_to_N).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DB="${1:-app_src}"
ROWS="${2:-1000000}"
SCHEMA="${APP_SCHEMA:-shop}"

case "$DB" in *[!A-Za-z0-9_]* | "") echo "seed_app.sh: DB must be letters, digits and _: '$DB'" >&2; exit 2 ;; esac
case "$ROWS" in *[!0-9]* | "") echo "seed_app.sh: ROWS must be a number: '$ROWS'" >&2; exit 2 ;; esac
[ "$ROWS" -ge 8 ] || { echo "seed_app.sh: ROWS must be at least 8" >&2; exit 2; }
case "$SCHEMA" in shop | library) ;; *) echo "seed_app.sh: APP_SCHEMA must be shop or library: '$SCHEMA'" >&2; exit 2 ;; esac

# shellcheck disable=SC2086  # MYSQL_OPTS is a list of options
sql() {
    mariadb -h"${MYSQL_HOST:-127.0.0.1}" -P"${MYSQL_PORT:-3306}" -u"${MYSQL_USER:-root}" \
        ${MYSQL_OPTS:-} --default-character-set=utf8mb4 "$@"
}

max() { if [ "$1" -gt "$2" ]; then echo "$1"; else echo "$2"; fi; }

start=$(date +%s.%N)
sql -e "DROP DATABASE IF EXISTS \`$DB\`; CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4"

case "$SCHEMA" in
shop)
    R=$(max 400 $((ROWS / 40)))        # rentals
    C=$(max 25 $((R / 16)))            # customers
    I=$(max 100 $((R / 4)))            # inventory
    INV=$(max 50 $((R / 5)))           # invoices
    sed -e "s/@R@/$R/g" -e "s/@C@/$C/g" -e "s/@A@/$((C + 50))/g" -e "s/@I@/$I/g" \
        -e "s/@P@/$((R + R / 20))/g" -e "s/@INV@/$INV/g" -e "s/@LINES@/$((3 * INV))/g" \
        -e "s/@LOG@/$((R / 2))/g" "$ROOT/scripts/fixtures/app_schema.sql" | sql "$DB" &
    app=$!
    # The stock tables: the fixture's own statements, renamed and restricted to the ids of
    # one residue (seq_K_to_N_step_8), two tables at a time beside the application tables.
    stock() {
        local k="$1" first="$1" text
        [ "$k" -eq 0 ] && first=8
        text=$(sed -e "s/vehicles_stock/stock_$k/g" \
                   -e "s/seq_1_to_@ROWS@/seq_${first}_to_${ROWS}_step_8/" \
                   "$ROOT/scripts/fixtures/vehicles_stock.sql")
        case "$text" in
            *"_step_8"*) ;;
            *) echo "seed_app.sh: vehicles_stock.sql no longer reads FROM seq_1_to_@ROWS@" >&2; return 1 ;;
        esac
        if [ "$first" -le "$ROWS" ]; then
            printf '%s\n' "$text" | sql "$DB" >/dev/null
        else   # fewer than 8 ids: this residue is empty (seq_9_to_8 would count down)
            printf '%s\n' "$text" | sed '/^INSERT INTO/,$d' | sql "$DB" >/dev/null
        fi
    }
    ( for k in 0 2 4 6; do stock "$k"; done ) & even=$!
    ( for k in 1 3 5 7; do stock "$k"; done ) & odd=$!
    status=0
    wait "$app" || status=$?
    wait "$even" || status=$?
    wait "$odd" || status=$?
    [ "$status" -eq 0 ] || { echo "seed_app.sh: seeding $DB failed" >&2; exit 1; }
    ;;
library)
    L=$(max 300 $((ROWS / 100)))       # loans
    M=$(max 50 $((L / 5)))             # members
    B=$(max 100 $((L / 4)))            # books
    sed -e "s/@L@/$L/g" -e "s/@L3@/$((L / 3))/g" -e "s/@M@/$M/g" -e "s/@B@/$B/g" \
        -e "s/@B2@/$((2 * B))/g" -e "s/@CP@/$((2 * B))/g" -e "s/@LOG@/$L/g" \
        "$ROOT/scripts/fixtures/app2_schema.sql" | sql "$DB"
    ;;
esac

sql -e "ANALYZE TABLE $(sql -N -e "SELECT GROUP_CONCAT(CONCAT('\`$DB\`.\`', TABLE_NAME, '\`'))
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$DB' AND TABLE_TYPE = 'BASE TABLE'")" >/dev/null

# Exact counts, not information_schema's estimates.
counts=$(sql -N -e "SELECT CONCAT('SELECT ', GROUP_CONCAT(CONCAT('''', TABLE_NAME, ''', (SELECT COUNT(*) FROM \`$DB\`.\`', TABLE_NAME, '\`)')
        ORDER BY TABLE_NAME SEPARATOR ' UNION ALL SELECT '))
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = '$DB' AND TABLE_TYPE = 'BASE TABLE'" | sql -N)
printf '%s\n' "$counts" | awk -F'\t' '{ printf "%-16s %9d\n", $1, $2 }'
end=$(date +%s.%N)
printf '%s\n' "$counts" | awk -F'\t' -v db="$DB" -v start="$start" -v end="$end" \
    '{ n++; rows += $2 } END { printf "%s: %d tables, %d rows (%.1f s)\n", db, n, rows, end - start }'
