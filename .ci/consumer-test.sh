#!/usr/bin/env bash
# Consumer test: packs connect-mesh as npm would publish it, installs the
# tarball into a fresh project outside the repo, generates that project's own
# proto with buf, type-checks it with skipLibCheck: false and without the
# optional peers, then runs a server and an ESM and a CJS client with plain
# node (no tsx), and calls the server with `buf curl` through reflection.
#
#   .ci/consumer-test.sh               the check
#   .ci/consumer-test.sh --self-check  also repacks with dist/gen/ left out of
#                                      `files` and fails unless the consumer
#                                      then fails (proves the check can fail)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
fixture="$repo/test/package/consumer"
self_check=0
[ "${1:-}" = "--self-check" ] && self_check=1

work="$(mktemp -d "${TMPDIR:-/tmp}/mesh-consumer.XXXXXX")"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The consumer installs the same versions the repo's lockfile pins.
lock_version() {
  node -e 'const l = require(process.argv[1]).packages; console.log(l["node_modules/" + process.argv[2]].version)' \
    "$repo/package-lock.json" "$1"
}

echo "-- npm pack (prepack builds dist/)"
(cd "$repo" && npm pack --silent --pack-destination "$work" >"$work/pack-name")
tarball="$work/$(tail -n 1 "$work/pack-name")"
files=$(tar -tzf "$tarball" | wc -l)
bytes=$(wc -c <"$tarball")
unpacked=$(tar -xzOf "$tarball" | wc -c)
echo "tarball: $(basename "$tarball"), $files files, $bytes bytes packed, $unpacked bytes unpacked"
if tar -tzf "$tarball" | grep -Ev '^package/(dist/(src|gen)/.*\.(js|d\.ts|js\.map)|package\.json|README\.md|LICENSE|CHANGELOG\.md)$'; then
  echo "the tarball ships files a user does not need (listed above)" >&2
  exit 1
fi
# The public declarations name neither ioredis nor bullmq (src/redis-client.ts):
# ioredis 6.1's own import the untyped redis-errors, which fails a
# skipLibCheck: false consumer (TS7016) whenever ours reference them.
if tar -xzOf "$tarball" --wildcards 'package/dist/src/*.d.ts' |
  grep -E "(from |import\()[\"'](ioredis|bullmq)[\"']"; then
  echo "the public declarations import ioredis or bullmq (listed above)" >&2
  exit 1
fi

app="$work/app"
mkdir -p "$app"
cp -r "$fixture/proto" "$fixture/buf.yaml" "$fixture/buf.gen.yaml" "$fixture/tsconfig.json" \
  "$fixture/server.ts" "$fixture/client.ts" "$fixture/client.cjs" "$app/"
cat >"$app/package.json" <<EOF
{
  "name": "mesh-consumer",
  "private": true,
  "type": "module",
  "dependencies": {
    "@bufbuild/protobuf": "$(lock_version @bufbuild/protobuf)",
    "@connectrpc/connect": "$(lock_version @connectrpc/connect)",
    "@connectrpc/connect-node": "$(lock_version @connectrpc/connect-node)",
    "connect-mesh": "file:$tarball"
  },
  "devDependencies": {
    "@bufbuild/buf": "$(lock_version @bufbuild/buf)",
    "@bufbuild/protoc-gen-es": "$(lock_version @bufbuild/protoc-gen-es)",
    "@types/node": "$(lock_version @types/node)",
    "typescript": "$(lock_version typescript)"
  }
}
EOF
lines=$(cat "$app"/*.ts "$app"/*.cjs | wc -l)
echo "consumer program: $lines lines (server.ts, client.ts, client.cjs)"

echo "-- npm install (registry, cache preferred) (${SECONDS}s)"
(cd "$app" && npm install --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
echo "consumer resolved ioredis $(node -p 'require(process.argv[1]).version' "$app/node_modules/ioredis/package.json")"
for absent in prom-client @opentelemetry/api @types/dns-packet pg @types/pg tsx; do
  if [ -e "$app/node_modules/$absent" ]; then
    echo "$absent is installed in the consumer: the no-optional-peers check would prove nothing" >&2
    exit 1
  fi
done

# run_consumer: generate, type-check + compile, run server and clients.
# Every step ends it with `|| return 1`: it also runs as an `if` condition,
# where `set -e` is off.
run_consumer() {
  (cd "$app" && npx buf generate) || return 1
  (cd "$app" && npx tsc -p .) || return 1
  (cd "$app" && node out/server.js >"$work/server.out" 2>"$work/server.err") &
  server_pid=$!
  local address=""
  for _ in $(seq 1 100); do
    address=$(head -n 1 "$work/server.out" 2>/dev/null || true)
    [ -n "$address" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$address" ]; then
    cat "$work/server.err" >&2
    return 1
  fi
  echo "server (plain node, ESM) listening on $address"
  (cd "$app" && node out/client.js "$address") || return 1
  (cd "$app" && node client.cjs "$address") || return 1
  # No --schema: buf finds the method through the server's reflection service.
  local answer
  answer=$(cd "$app" && npx buf curl --protocol grpc --http2-prior-knowledge \
    -d '{"name":"buf"}' "http://$address/greet.v1.GreetService/Greet") || return 1
  echo "buf curl (reflection): $answer"
  echo "$answer" | grep -q '"greeting": "hello, buf"' || return 1
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

echo "-- consumer: buf generate, tsc (skipLibCheck: false), node server + clients (${SECONDS}s)"
run_consumer
echo "consumer test passed (${SECONDS}s)"

if [ "$self_check" = 1 ]; then
  echo "-- self-check: a package whose files omit dist/gen must fail the consumer"
  stage="$work/stage"
  mkdir -p "$stage"
  cp -r "$repo/package.json" "$repo/dist" "$stage/"
  (cd "$stage" && node -e '
    const fs = require("node:fs");
    const p = JSON.parse(fs.readFileSync("package.json", "utf8"));
    const before = p.files.length;
    p.files = p.files.filter((f) => !f.startsWith("dist/gen/"));
    if (p.files.length === before) throw new Error("no dist/gen entry in files to remove");
    delete p.scripts.prepack;
    fs.writeFileSync("package.json", JSON.stringify(p, null, 2));
  ')
  mkdir -p "$work/broken-pack"
  broken="$(cd "$stage" && npm pack --silent --pack-destination "$work/broken-pack" 2>/dev/null | tail -n 1)"
  rm -rf "$app/node_modules/connect-mesh"
  mkdir -p "$app/node_modules/connect-mesh"
  tar -xzf "$work/broken-pack/$broken" -C "$app/node_modules/connect-mesh" --strip-components=1
  if (run_consumer) >"$work/self-check.log" 2>&1; then
    cat "$work/self-check.log"
    echo "self-check FAILED: the consumer passed with dist/gen missing from the package" >&2
    exit 1
  fi
  echo "self-check passed: the consumer fails without dist/gen:"
  grep -m 3 -E "error TS|ERR_MODULE_NOT_FOUND|Cannot find" "$work/self-check.log" || tail -n 3 "$work/self-check.log"
fi
