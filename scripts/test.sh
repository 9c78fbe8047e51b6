#!/usr/bin/env bash
# Runs the whole test suite: starts what the tests need (the local MariaDB, the TLS-only
# MariaDB standing in for Azure), then cargo test. Extra arguments go to cargo test; with
# none (the whole suite, as CI runs it), the house rules are checked too: formatting,
# clippy with warnings as errors (function length included, clippy.toml), and that
# `cargo install --locked --path .` builds and installs the binary.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_tools
ensure_mariadb
ensure_tls_mariadb
export TEST_TLS_PORT="$TLS_PORT"
cargo test "$@"
if [ $# -eq 0 ]; then
    say "cargo fmt --check; cargo clippy --all-targets -- -D warnings"
    cargo fmt --check
    cargo clippy --all-targets --quiet -- -D warnings
    say "cargo install --locked --path . (into target/install-check)"
    cargo install --locked --path . --root target/install-check --target-dir target --quiet --force
    target/install-check/bin/dbsync --version
fi
