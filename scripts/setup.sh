#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job on the bundled example:
# a seeded local MariaDB (database dbsync_example, table vehicles_stock) -> data/vehicles.db.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_tools
ensure_mariadb
ROWS="${ROWS:-100000}"
say "seeding dbsync_example.vehicles_stock with $ROWS rows"
seed_fixture dbsync_example "$ROWS"
say "building dbsync (release)"
cargo build --release --quiet
say "running: target/release/dbsync --config examples/config.ini --summary-json -"
target/release/dbsync --config examples/config.ini --summary-json -
