#!/usr/bin/env bash
# The test command: every unit, property and end-to-end test of the workspace.
# End-to-end tests build and start the real binaries themselves (over unix sockets and
# loopback ports only), so nothing needs to be running beforehand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo test --workspace --locked
