#!/usr/bin/env bash
# Run every check the project has, from the repository root, whatever the cwd:
#   1. install test dependencies (scripts/install-test-deps.sh; idempotent, fast when done)
#   2. cargo fmt --all --check
#   3. cargo clippy --workspace --all-targets -- -D warnings
#   4. cargo test --workspace --all-targets  (with TONGDAI_TEST_DATABASE_URL for the
#      Postgres store tests)
#
# --all / --workspace: every crate of the workspace, crates/arch-check's test (the
# module-cycle and layering check) included; without them only the service crate.
# The integration tests are six binaries (tests/<binary>/main.rs, sharing
# tests/support/): store, api, sip, campaign, cli, realtime; `cargo test --test sip`
# runs one of them.
#
# Plain `cargo test` on purpose (not cargo-nextest, even when installed): the output
# format stays stable and ends with cargo's usual `test result:` lines.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "scripts/install-test-deps.sh"
scripts/install-test-deps.sh

export TONGDAI_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace --all-targets (TONGDAI_TEST_DATABASE_URL=$TONGDAI_TEST_DATABASE_URL)"
cargo test --workspace --all-targets
