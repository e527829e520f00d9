#!/usr/bin/env bash
# Load benchmark of the GraphQL API with a real HTTP load tool (wrk, Debian package `wrk`) on
# loopback: requests per second and p50/p99 latency for a typical ETS query and for `fire`, on
# SQLite and (when PROCEDO_BENCH_POSTGRES_URL is set, e.g. postgres://postgres@127.0.0.1:5432/postgres)
# PostgreSQL. Not needed by the tests.
#
#   cargo build --release --bin procedo
#   bash benches/api_load.sh                 # SQLite only
#   PROCEDO_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bash benches/api_load.sh
#
# Knobs: DURATION (default 15s), QUERY_CONNECTIONS (default 64), FIRE_CONNECTIONS (default 16:
# one instance per connection, each firing `sposta` on its own convocation in a loop, so every
# request is a real transition with its history row, outbox row and timers).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${PROCEDO_BIN:-$ROOT/target/release/procedo}"
DURATION="${DURATION:-15s}"
QUERY_CONNECTIONS="${QUERY_CONNECTIONS:-64}"
FIRE_CONNECTIONS="${FIRE_CONNECTIONS:-16}"
command -v wrk >/dev/null || { echo "wrk non installato: apt-get install wrk" >&2; exit 2; }
[ -x "$BIN" ] || { echo "$BIN mancante: cargo build --release --bin procedo" >&2; exit 2; }

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

gql() { # token, JSON body → JSON response
  curl -sS -X POST "http://$BIND/graphql" -H "Authorization: Bearer $1" -H 'Content-Type: application/json' --data "$2"
}

field() { # JSON, python expression on `d`
  python3 -c "import json,sys; d=json.load(sys.stdin); print($2)" <<<"$1"
}

write_lua() { # file, body-producing Lua, token
  cat >"$1" <<LUA
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("n", counter)
  table.insert(threads, thread)
end
function init(args)
  errors = 0
  calls = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer $3"
end
$2
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then errors = errors + 1 end
end
function done(summary, latency, requests)
  local errs = 0
  for _, t in ipairs(threads) do errs = errs + t:get("errors") end
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f graphql_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errs))
end
LUA
}

run_backend() { # name, database URL
  local name="$1" url="$2"
  local port=$((20000 + RANDOM % 20000))
  BIND="127.0.0.1:$port"
  export PROCEDO_DATABASE_URL="$url" PROCEDO_WORKFLOWS="$ROOT/workflows"
  "$BIN" org add --id ambito --name "Ambito" --kind ambito >/dev/null 2>&1
  "$BIN" org add --id ets-bench --name "ETS bench" --kind ets >/dev/null 2>&1
  "$BIN" person add --id rup --name RUP --email rup@example.org --org ambito --role rup --role ufficio_di_piano >/dev/null 2>&1
  "$BIN" person add --id ets --name ETS --email ets@example.org --org ets-bench --role ets >/dev/null 2>&1
  local rup ufficio ets
  rup="$("$BIN" token create --person rup --role rup 2>/dev/null)"
  ufficio="$("$BIN" token create --person rup --role ufficio_di_piano 2>/dev/null)"
  ets="$("$BIN" token create --person ets --role ets 2>/dev/null)"

  # The load comes from one token and one address: the rate limit is what is measured
  # otherwise, so it is off here.
  PROCEDO_LOG=error "$BIN" serve --no-scheduler --bind "$BIND" --rate-per-minute 0 --anonymous-rate-per-minute 0 >"$WORK/server-$name.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://$BIND/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

  # A published avviso with one submission-free ETS reading it.
  local today avviso
  today="$(TZ=Europe/Rome date +%F)"
  avviso="$(field "$(gql "$rup" '{"query":"mutation { startInstance(procedureId: \"avviso_coprogettazione\", variables: {oggetto: \"Bench\"}) { instance { id } } }"}')" "d['data']['startInstance']['instance']['id']")"
  local published
  published="$(gql "$rup" "{\"query\":\"mutation { fire(instanceId: \\\"$avviso\\\", event: \\\"pubblica\\\", input: {data_pubblicazione: \\\"$today\\\", atto_criteri: \\\"Determina n. 1\\\"}) { seq } }\"}")"
  case "$published" in *'"errors"'*) echo "[$name] pubblicazione fallita: $published" >&2; exit 1;; esac

  # One convened meeting per fire connection.
  local ids=()
  for _ in $(seq 1 "$FIRE_CONNECTIONS"); do
    local m
    m="$(field "$(gql "$ufficio" '{"query":"mutation { startInstance(procedureId: \"convocazione_assemblea\", variables: {organo: \"Assemblea\", ordine_del_giorno: [\"Bench\"], luogo: \"Sala\", data_seduta: \"2027-06-15T17:00:00+02:00\"}) { instance { id } } }"}')" "d['data']['startInstance']['instance']['id']")"
    gql "$ufficio" "{\"query\":\"mutation { fire(instanceId: \\\"$m\\\", event: \\\"convoca\\\") { seq } }\"}" >/dev/null
    ids+=("\"$m\"")
  done
  local id_list
  id_list="$(IFS=,; echo "${ids[*]}")"

  write_lua "$WORK/query.lua" "wrk.body = '{\"query\":\"query(\$id: ID!) { instance(id: \$id) { id state { id title } variables { name value } deadlines { variable at trace } submissionWindow { open deadline } submissions { id status } } }\",\"variables\":{\"id\":\"$avviso\"}}'" "$ets"
  write_lua "$WORK/fire.lua" "local ids = { $id_list }
local flip = false
function request()
  flip = not flip
  local day = flip and '2027-06-16T17:00:00+02:00' or '2027-06-15T17:00:00+02:00'
  local body = '{\"query\":\"mutation(\$id: ID!, \$d: String!) { fire(instanceId: \$id, event: \\\\\"sposta\\\\\", input: {data_seduta: \$d}) { seq } }\",\"variables\":{\"id\":\"' .. ids[n] .. '\",\"d\":\"' .. day .. '\"}}'
  return wrk.format(nil, nil, nil, body)
end" "$ufficio"

  # Check both bodies once before loading.
  local check
  check="$(gql "$ets" "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$WORK/query.lua")")"
  case "$check" in *'"errors"'*) echo "[$name] query di prova fallita: $check" >&2; exit 1;; esac

  echo "== $name: ETS query (instance with variables, deadlines, window, own submissions), $QUERY_CONNECTIONS connections, $DURATION"
  wrk -t2 -c"$QUERY_CONNECTIONS" -d"$DURATION" -s "$WORK/query.lua" "http://$BIND/graphql" | grep RESULT
  echo "== $name: fire (sposta on $FIRE_CONNECTIONS convocations, one per connection), $DURATION"
  wrk -t"$FIRE_CONNECTIONS" -c"$FIRE_CONNECTIONS" -d"$DURATION" -s "$WORK/fire.lua" "http://$BIND/graphql" | grep RESULT

  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

run_backend sqlite "sqlite://$WORK/bench.db?mode=rwc"

if [ -n "${PROCEDO_BENCH_POSTGRES_URL:-}" ]; then
  DB="procedo_bench_$$"
  BASE="${PROCEDO_BENCH_POSTGRES_URL%/*}"
  psql "$PROCEDO_BENCH_POSTGRES_URL" -qc "CREATE DATABASE $DB" >/dev/null
  run_backend postgres "$BASE/$DB" || true
  psql "$PROCEDO_BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
fi
