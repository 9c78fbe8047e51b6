#!/usr/bin/env bash
# Runs the whole test suite: starts what the tests need (the local MariaDB, the TLS-only
# MariaDB standing in for Azure), then cargo test. Extra arguments go to cargo test.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_tools
ensure_mariadb
ensure_tls_mariadb
export TEST_TLS_PORT="$TLS_PORT"
cargo test "$@"
