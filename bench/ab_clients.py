"""Side by side: ES256 client credentials over N distinct clients, an earlier build (before) against
this one (after), alternating per point, so both are measured in one run.

    git worktree add /work/wt-before 7c208a2
    (cd /work/wt-before && CARGO_TARGET_DIR=target cargo build --release -p portero --bin portero)
    BENCH_SECONDS=10 python3 bench/ab_clients.py 1 1000 10000 100000

The clients are written straight into the table (a clone of one client made by the CLI, with its
own `$s256$` secret each), as an earlier build cannot import `$s256$` hashes. Each build runs with
its own defaults; the newer one with `client_cache_entries` sized to the table, and measured once
its cache is warm."""
import os, sqlite3, subprocess, sys, time, secrets
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run, scale

BINARIES = {"before": os.environ.get("BEFORE", "/work/wt-before/target/release/portero"), "after": run.PORTERO}

def point(label, binary, count):
    run.PORTERO = binary
    toml = "" if label == "before" else f"client_cache_entries = {max(100_000, count)}\n"
    p = scale.LoggedPortero(f"ab-{label}-{count}", "ES256", toml=toml)
    p.cli("--create", "tenant", "create", "bench")
    p.cli("client", "create", "--id", "template", "--grants", "client_credentials", "--scopes", "api", "--tenant", "bench")
    db = sqlite3.connect(p.url_db.removeprefix("sqlite://"))
    cols = [r[1] for r in db.execute("PRAGMA table_info(clients)")]
    row = dict(zip(cols, db.execute("SELECT * FROM clients WHERE id='template'").fetchone()))
    auths, rows = [], []
    for i in range(count):
        cid, secret = f"client-{i:08d}", secrets.token_urlsafe(24)
        r = dict(row, id=cid, secret_hash=scale.s256_hash(secret))
        rows.append(tuple(r[c] for c in cols))
        auths.append(run.basic(cid, secret))
    db.executemany(f"INSERT INTO clients ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", rows)
    db.commit(); db.close()
    path = os.path.join(p.dir, "auths.txt")
    open(path, "w").write("\n".join(auths) + "\n")
    p.start()
    p.auth = auths[0]
    p.first_token_seconds()
    if label == "after":
        scale.wait_for(lambda: p.logged("client cache warmed"), "warm", 600)
    result = run.wrk(f"{p.base}/oauth2/token", scale.LUA_CLIENTS, 16, args=(path,))
    result["rss_mib"] = scale.rss_mib(p.process.pid)
    p.stop()
    return result

counts = [int(x) for x in sys.argv[1:]] or [1, 1000, 10000, 100000]
for count in counts:
    for label in ("before", "after"):
        r = point(label, BINARIES[label], count)
        print(f"{label:6} {count:>8} {r['rps']:>9.0f}/s p99 {r['p99_ms']:6.2f} ms non-2xx {r['non_2xx']} rss {r['rss_mib']:.1f} MiB", flush=True)
