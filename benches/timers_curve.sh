#!/usr/bin/env bash
# The cost per timer from 10,000 to 1,000,000 timers, all due at once: `procedo bench timers`
# at each count on a fresh SQLite file and (when PROCEDO_BENCH_POSTGRES_URL is set, e.g.
# postgres://postgres@127.0.0.1:5432/postgres) on a fresh PostgreSQL database, one line each.
# Not needed by the tests.
#
#   cargo build --release --bin procedo
#   bash benches/timers_curve.sh
#   PROCEDO_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres bash benches/timers_curve.sh
#
# Knobs: COUNTS (default "10000 100000 1000000"), SPREAD (default 0: all due at once; e.g.
# SPREAD=600 COUNTS=1000000 for a million timers over ten minutes), BACKENDS (default
# "sqlite postgres").
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${PROCEDO_BIN:-$ROOT/target/release/procedo}"
COUNTS="${COUNTS:-10000 100000 1000000}"
SPREAD="${SPREAD:-0}"
BACKENDS="${BACKENDS:-sqlite postgres}"
[ -x "$BIN" ] || { echo "$BIN mancante: cargo build --release --bin procedo" >&2; exit 2; }

printf '%-9s %9s %7s %11s %12s %12s %11s %11s %9s\n' backend timers spread "timers/s" "µs wall" "µs CPU" "p50 late" "p99 late" "peak RSS"
for backend in $BACKENDS; do
  for n in $COUNTS; do
    args=(bench timers --count "$n" --spread "$SPREAD")
    db=""
    case "$backend" in
      sqlite) ;;
      postgres)
        [ -n "${PROCEDO_BENCH_POSTGRES_URL:-}" ] || continue
        db="procedo_curve_$$_$n"
        psql "$PROCEDO_BENCH_POSTGRES_URL" -qc "CREATE DATABASE $db" >/dev/null
        args+=(--database "${PROCEDO_BENCH_POSTGRES_URL%/*}/$db")
        ;;
      *) echo "backend sconosciuto: $backend" >&2; exit 2 ;;
    esac
    out="$("$BIN" "${args[@]}" 2>/dev/null)" || { echo "$backend $n: benchmark fallito" >&2; out=""; }
    if [ -n "$db" ]; then
      psql "$PROCEDO_BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    fi
    [ -n "$out" ] || continue
    python3 - "$backend" "$n" "$SPREAD" <<PY
import re, sys
out = """$out"""
backend, n, spread = sys.argv[1:]
fired = re.search(r"([\d.]+) timers/s; lateness p50 (-?\d+) ms, p99 (-?\d+) ms.*peak RSS (.*)", out)
# Spread over time, the wall cost is the spread's: only the CPU is printed then.
cost = re.search(r"cost per timer: (?:([\d.]+) µs wall, )?(\S+)", out)
print(f"{backend:<9} {int(n):>9} {spread:>6}s {float(fired[1]):>11.0f} {cost[1] or '-':>12} {cost[2]:>12} {fired[2]+' ms':>11} {fired[3]+' ms':>11} {fired[4]:>9}")
PY
  done
done
