#!/usr/bin/env python3
"""What this machine's SQLite does with the rows of a timer firing, without procedo.

N timers due at once, on procedo's own schema (created by `procedo org list` on a fresh file):
claim 1,000 at a time (one UPDATE … RETURNING, committed), then, in one transaction per batch,
row by row from Python's sqlite3: move each timer's instance (version + 1), append its history
row, mark the timer done. Instance ids are time-ordered (UUID version 7), as procedo makes them. WAL, synchronous = NORMAL, as procedo opens the file. The figure is
the machine's reference for `procedo bench timers` on SQLite. Not needed by the tests.

    cargo build --release --bin procedo
    python3 benches/sqlite_reference.py [N]          # default 100000
"""
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("PROCEDO_BIN", os.path.join(ROOT, "target", "release", "procedo"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
NOW = "2026-11-29T00:00:00.000000+00:00"

with tempfile.TemporaryDirectory() as scratch:
    db = os.path.join(scratch, "reference.db")
    subprocess.run(
        [BIN, "org", "list"],
        env={**os.environ, "PROCEDO_DATABASE_URL": f"sqlite://{db}?mode=rwc"},
        capture_output=True,
        check=True,
    )
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("PRAGMA synchronous = NORMAL")
    c.execute("PRAGMA cache_size = -32768")
    c.execute("PRAGMA foreign_keys = OFF")  # no definition row: the setup is not the point
    c.execute("BEGIN")
    millis = int(time.time() * 1000)
    for k in range(N):
        # Version 7: 48 bits of milliseconds, a 12-bit counter, 62 random bits.
        stamp = (millis << 12) + k
        rand = uuid.uuid4().int & ((1 << 62) - 1)
        iid = str(uuid.UUID(int=((stamp >> 12) << 80) | (7 << 76) | ((stamp & 0xFFF) << 64) | (2 << 62) | rand))
        c.execute(
            "INSERT INTO instances (id, definition_id, definition_version, parent_id, state, "
            "is_final, data, version, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (iid, "bench_timer", 1, None, "attesa", 0, '{"variables":{}}', 1, NOW, NOW),
        )
        c.execute(
            "INSERT INTO history (instance_id, seq, at, actor_id, role, event, from_state, "
            "to_state, payload, late, idempotency_key, effects) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (iid, 1, NOW, "bench", "ufficio_di_piano", "start", None, "attesa", "{}", 0, None, "[]"),
        )
        c.execute(
            "INSERT INTO timers (instance_id, key, timer, fire_at, action, trace, status, "
            "created_at, attempts) VALUES (?,?,?,?,?,?,?,?,0)",
            (iid, "scadenza", "scadenza", NOW, "{}", "{}", "pending", NOW),
        )
    c.execute("COMMIT")
    started = time.time()
    fired = 0
    while True:
        c.execute("BEGIN IMMEDIATE")
        rows = c.execute(
            "UPDATE timers SET status = 'claimed', claimed_by = 'w', lease_until = ? WHERE id IN "
            "(SELECT id FROM timers WHERE status = 'pending' AND fire_at <= ? "
            "ORDER BY fire_at, id LIMIT 1000) RETURNING id, instance_id",
            (NOW, NOW),
        ).fetchall()
        c.execute("COMMIT")
        if not rows:
            break
        c.execute("BEGIN IMMEDIATE")
        for timer_id, instance_id in rows:
            (version,) = c.execute(
                "UPDATE instances SET state = 'scaduta', version = version + 1, updated_at = ? "
                "WHERE id = ? RETURNING version",
                (NOW, instance_id),
            ).fetchone()
            c.execute(
                "INSERT INTO history (instance_id, seq, at, actor_id, role, event, from_state, "
                "to_state, payload, late, idempotency_key, effects) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (instance_id, version, NOW, "system", "system", "scade", "attesa", "scaduta",
                 "{}", 0, None, "[]"),
            )
            c.execute(
                "UPDATE timers SET status = 'done', outcome = 'fired', fired_at = ?, "
                "lease_until = NULL WHERE id = ?",
                (NOW, timer_id),
            )
        c.execute("COMMIT")
        fired += len(rows)
    elapsed = time.time() - started
    print(f"python sqlite3, row by row: {fired} timers in {elapsed:.1f} s: {fired / elapsed:.0f} units/s")
