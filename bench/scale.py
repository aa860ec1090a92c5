"""Curves for issue 15: how Portero's rates hold as the work grows, measured in the same run as the
rest of bench/run.

- hello: an axum server answering a fixed 784-byte JSON (`examples/hello.rs` of portero-server),
  the ceiling of HTTP on these cores; ES256/EdDSA client credentials are compared with it.
- clients: ES256 client credentials with every request authenticating as a client picked at
  random from 1 .. N (N = 1, 1k, 10k, 100k; 1M with BENCH_MAX_CLIENTS=1000000), the clients
  provisioned by one `portero import` of JSON Lines with `$s256$` secret hashes.
- refresh: ES256 refresh with 0 .. 1M other live refresh tokens in the table (10M with
  BENCH_MAX_REFRESH=10000000).
- audit: ES256 client credentials with 0 .. 1M rows already in the audit table.
- rss: the server's RSS sampled every 100 ms through idle, client-credentials load, password
  grants, 1,000 admin-created clients with chosen secrets, and idle again.
- two nodes: two Portero processes on one PostgreSQL database, each driven by its own wrk, against
  one node driven alone (both on these two cores: this checks the shape, not the scaling).

Alone, after building: `python3 bench/scale.py` (BENCH_SECONDS=10 by default).
"""

import base64
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the shared Portero, wrk and log helpers)

HELLO = os.path.join(run.ROOT, "target", "release", "examples", "hello")
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef0123"
CC_BODY = "grant_type=client_credentials"


def env_int(name, default):
    return int(os.environ.get(name, default))


def client_counts():
    most = env_int("BENCH_MAX_CLIENTS", 100_000)
    return [n for n in (1, 1_000, 10_000, 100_000, 1_000_000, 10_000_000) if n <= most]


def refresh_counts():
    most = env_int("BENCH_MAX_REFRESH", 1_000_000)
    return [n for n in (0, 100_000, 1_000_000, 10_000_000) if n <= most]


def audit_counts():
    most = env_int("BENCH_MAX_AUDIT", 1_000_000)
    return [n for n in (0, 100_000, 1_000_000, 10_000_000) if n <= most]


def cc_script(auth):
    return run.LUA_STATIC.format(body=CC_BODY, auth=auth)


def hello():
    port = run.free_port()
    process = subprocess.Popen([HELLO, f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/oauth2/token"
    wait_for(lambda: run.post(url, CC_BODY, {"Authorization": "Basic eDp5"})[0] == 200, "hello")
    result = run.wrk(url, cc_script("Basic eDp5"), 16)
    result["peak_rss_mib"] = run.rss_peak_mib(process.pid)
    process.terminate()
    process.wait(timeout=10)
    return result


def wait_for(ready, what, seconds=60):
    started = time.monotonic()
    while not ready():
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"{what} not ready after {seconds} s")
        time.sleep(0.01)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# Every request authenticates as one of the clients in args[1], picked at random.
LUA_CLIENTS = run.LUA_THREAD_ID + """
function init(args)
  auths = {}
  for line in io.lines(args[1]) do auths[#auths + 1] = line end
  math.randomseed(os.time() + id * 7919)
end
function request()
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auths[math.random(#auths)]}, "grant_type=client_credentials")
end
"""


def s256_hash(secret):
    salt = secrets.token_bytes(16)
    digest = hashlib.sha256(salt + secret.encode()).digest()
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return f"$s256${b64(salt)}${b64(digest)}"


def write_clients(directory, count):
    """The import file for `count` clients and the Authorization header of each."""
    rows, auths = os.path.join(directory, "clients.jsonl"), os.path.join(directory, "auths.txt")
    with open(rows, "w") as r, open(auths, "w") as a:
        r.write(json.dumps({"kind": "tenant", "name": "bench"}) + "\n")
        for i in range(count):
            client_id, secret = f"client-{i:08d}", secrets.token_urlsafe(24)
            r.write(json.dumps({"kind": "client", "id": client_id, "secret_hash": s256_hash(secret),
                                "grants": ["client_credentials"], "scopes": "api", "tenants": ["bench"]}) + "\n")
            a.write(run.basic(client_id, secret) + "\n")
    return rows, auths


class LoggedPortero(run.Portero):
    """A Portero whose log goes to a file, with a portero.toml of its own."""

    def __init__(self, name, alg, database_url=None, toml=""):
        super().__init__(name, alg, database_url)
        with open(os.path.join(self.dir, "portero.toml"), "w") as f:
            f.write(toml)
        self.log_path = os.path.join(self.dir, "serve.log")
        self.env["RUST_LOG"] = "info"
        self.env["PORTERO_ADMIN_TOKEN"] = ADMIN_TOKEN

    def start(self):
        self.started_at = time.monotonic()
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [run.PORTERO, "serve", "--listen", f"127.0.0.1:{self.port}", "--signing-alg", self.alg,
             "--metrics-token", run.METRICS_TOKEN],
            cwd=self.dir, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT)
        return self

    def logged(self, text):
        with open(self.log_path) as f:
            return text in f.read()


def clients_point(count):
    run.log(f"  {count} clients ...")
    capacity = max(100_000, count)
    p = LoggedPortero(f"clients-{count}", "ES256", toml=f"client_cache_entries = {capacity}\n")
    rows, auths = write_clients(p.dir, count)
    started = time.monotonic()
    p.cli("--create", "import", rows)
    imported = time.monotonic() - started
    p.start()
    wait_for(lambda: p.logged("client cache warmed"), "client cache warm-up", 600)
    warmed = time.monotonic() - p.started_at
    idle_rss = rss_mib(p.process.pid)
    result = run.wrk(f"{p.base}/oauth2/token", LUA_CLIENTS, 16, args=(auths,))
    result.update(clients=count, import_s=imported, warm_s=warmed, idle_rss_mib=idle_rss,
                  rss_mib=rss_mib(p.process.pid), peak_rss_mib=p.stop())
    return result


def filled_point(name, fill_table, measure):
    """One point of a curve: a fresh ES256 server, `fill_table(p)` before it starts, `measure(p)`."""
    p = run.Portero(name, "ES256")
    p.provision()
    fill_table(p)
    p.start().first_token_seconds()
    result = measure(p)
    result["peak_rss_mib"] = p.stop()
    return result


def refresh_point(live):
    run.log(f"  refresh with {live} other live refresh tokens ...")
    result = filled_point(f"refresh-{live}", lambda p: fill_refresh_tokens(p, live), run.refresh_bench)
    result["live"] = live
    return result


def fill_refresh_tokens(p, count):
    """`count` live refresh tokens of other families, straight into the table."""
    now = int(time.time())
    row = lambda i: (base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode(), f"filler-{i}", "bench",  # noqa: E731
                     p.user, p.user, p.tenant, "api", p.base, now, now, now + 86400)
    fill(p, f"INSERT INTO refresh_tokens ({run.REFRESH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", row, count)


def fill(p, insert, row, count, batch=200_000):
    """`count` rows `row(i)` written with `insert` into `p`'s SQLite database, `batch` per commit."""
    db = sqlite3.connect(p.url_db.removeprefix("sqlite://"))
    for start in range(0, count, batch):
        db.executemany(insert, [row(i) for i in range(start, min(count, start + batch))])
        db.commit()
    db.close()


def audit_point(rows):
    run.log(f"  client credentials with {rows} audit rows ...")
    measure = lambda p: run.wrk(f"{p.base}/oauth2/token", cc_script(p.auth), 16)  # noqa: E731
    result = filled_point(f"audit-{rows}", lambda p: fill_audit(p, rows), measure)
    result["rows"] = rows
    return result


def fill_audit(p, count):
    now = int(time.time())
    row = lambda i: (f"filler-{i}", now - 86400 + i % 86400, "token", "issued", "bench", "bench",  # noqa: E731
                     "client_credentials", "127.0.0.1")
    fill(p, "INSERT INTO audit_events (id, at, kind, outcome, client_id, subject, grant_type, source) "
            "VALUES (?,?,?,?,?,?,?,?)", row, count)


def rss_timeline():
    """RSS every 100 ms through the phases a server lives through."""
    run.log("  RSS over time ...")
    p = LoggedPortero("rss", "ES256")
    p.provision()
    p.start().first_token_seconds()
    samples, phases, done = [], [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append((time.monotonic() - p.started_at, rss_mib(p.process.pid)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()

    def phase(name, action):
        began = time.monotonic() - p.started_at
        action()
        phases.append({"phase": name, "from_s": began, "to_s": time.monotonic() - p.started_at,
                       "rss_at_end_mib": rss_mib(p.process.pid)})

    token_url = f"{p.base}/oauth2/token"
    try:
        phase("idle", lambda: time.sleep(3))
        phase("client_credentials c16", lambda: run.wrk(token_url, cc_script(p.auth), 16))
        phase("client_credentials c64", lambda: run.wrk(token_url, cc_script(p.auth), 64))
        phase("idle", lambda: time.sleep(3))
        phase("4 password grants", lambda: [p.token("grant_type=password&username=merchant&password=bench-password")
                                            for _ in range(4)])
        phase("idle", lambda: time.sleep(7))
        phase("1,000 admin clients with chosen secrets", lambda: admin_clients(p, 1000))
        phase("idle", lambda: time.sleep(8))
    finally:
        done.set()
        sampler.join()
    peak = p.stop()
    return {"samples": samples, "phases": phases, "peak_rss_mib": peak}


def admin_clients(p, count, workers=4):
    """`count` clients created through the admin API with chosen secrets, `workers` at a time."""
    def create(start):
        for i in range(start, count, workers):
            body = json.dumps({"id": f"admin-{i}", "grants": ["client_credentials"], "scopes": "api",
                               "tenants": ["bench"], "secret": f"chosen-secret-{i}-0123456789"})
            status, answer = run.post(f"{p.base}/admin/clients", body,
                                      {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"})
            assert status == 201, answer

    threads = [threading.Thread(target=create, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def two_nodes():
    """Client credentials on one node, then on two nodes of one PostgreSQL database at once, and a
    refresh token issued by one node redeemed on the other."""
    run.log("  two nodes on one PostgreSQL database ...")
    name, url = run.postgres_database()
    try:
        a = run.Portero("node-a", "ES256", url)
        a.provision()
        a.start().first_token_seconds()
        b = run.Portero("node-b", "ES256", url)
        b.secret, b.auth, b.user, b.tenant = a.secret, a.auth, a.user, a.tenant
        b.env["PORTERO_MASTER_KEY"] = a.env["PORTERO_MASTER_KEY"]
        b.start().first_token_seconds()
        issued = a.token("grant_type=password&username=merchant&password=bench-password")
        redeemed = b.token(f"grant_type=refresh_token&refresh_token={issued['refresh_token']}")
        one = run.wrk(f"{a.base}/oauth2/token", cc_script(a.auth), 16)
        both = parallel_wrk([(f"{a.base}/oauth2/token", cc_script(a.auth)), (f"{b.base}/oauth2/token", cc_script(b.auth))])
        a.stop()
        b.stop()
        return {"one_node": one, "two_nodes": both, "refresh_across_nodes": "refresh_token" in redeemed}
    finally:
        subprocess.run(["psql", run.PG_URL, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


def parallel_wrk(targets):
    """One wrk per target, 8 connections and one thread each, all at once."""
    results = [None] * len(targets)

    def drive(index, url, script):
        results[index] = run.wrk(url, script, 8, threads=1)

    threads = [threading.Thread(target=drive, args=(i, u, s)) for i, (u, s) in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def measure():
    results = {"hello": hello(), "clients": [clients_point(n) for n in client_counts()],
               "refresh": [refresh_point(n) for n in refresh_counts()],
               "audit": [audit_point(n) for n in audit_counts()], "rss": rss_timeline()}
    if os.environ.get("BENCH_SKIP_POSTGRES") != "1":
        results["two_nodes"] = two_nodes()
    return results


def render(s, portero=None):
    """The curves as tables. `portero` is run.py's per-algorithm results, for the hello ratios."""
    hello_rps = s["hello"]["rps"]
    lines = [f"axum hello (fixed 784-byte JSON), c16: {hello_rps:.0f}/s, p99 {s['hello']['p99_ms']:.2f} ms, "
             f"peak RSS {s['hello']['peak_rss_mib']:.1f} MiB.", ""]
    if portero:
        lines += ["| client_credentials c16 | tokens/s | of hello |", "|---|---|---|"]
        for alg, entry in portero.items():
            rps = entry["client_credentials"][0]["rps"]
            lines.append(f"| {alg} | {rps:.0f} | {rps / hello_rps:.2f} |")
        lines.append("")
    one = s["clients"][0]["rps"]
    lines += ["| clients | tokens/s | p99 ms | of one client | non-2xx | import s | start to warm s | RSS idle / after MiB |",
              "|---|---|---|---|---|---|---|---|"]
    for c in s["clients"]:
        lines.append(f"| {c['clients']:,} | {c['rps']:.0f} | {c['p99_ms']:.2f} | {c['rps'] / one:.2f} | {c['non_2xx']} | "
                     f"{c['import_s']:.1f} | {c['warm_s']:.2f} | {c['idle_rss_mib']:.1f} / {c['rss_mib']:.1f} |")
    base = s["refresh"][0]["rps"]
    lines += ["", "| other live refresh tokens | refresh/s | p99 ms | of empty table | non-2xx |", "|---|---|---|---|---|"]
    for r in s["refresh"]:
        lines.append(f"| {r['live']:,} | {r['rps']:.0f} | {r['p99_ms']:.2f} | {r['rps'] / base:.2f} | {r['non_2xx']} |")
    base = s["audit"][0]["rps"]
    lines += ["", "| audit rows | client_credentials/s | p99 ms | of empty table |", "|---|---|---|---|"]
    for a in s["audit"]:
        lines.append(f"| {a['rows']:,} | {a['rps']:.0f} | {a['p99_ms']:.2f} | {a['rps'] / base:.2f} |")
    lines += ["", "| phase | seconds | RSS at its end MiB |", "|---|---|---|"]
    for ph in s["rss"]["phases"]:
        lines.append(f"| {ph['phase']} | {ph['from_s']:.1f}-{ph['to_s']:.1f} | {ph['rss_at_end_mib']:.1f} |")
    lines.append(f"\nPeak RSS over the whole timeline: {s['rss']['peak_rss_mib']:.1f} MiB.")
    if "two_nodes" in s:
        t = s["two_nodes"]
        both = sum(r["rps"] for r in t["two_nodes"])
        parts = " + ".join(f"{r['rps']:.0f}" for r in t["two_nodes"])
        lines += ["", f"PostgreSQL, ES256 client credentials: one node {t['one_node']['rps']:.0f}/s; two nodes at once "
                  f"{parts} = {both:.0f}/s "
                  f"({both / t['one_node']['rps']:.2f}x, same two cores). A refresh token issued on one node redeemed "
                  f"on the other: {'yes' if t['refresh_across_nodes'] else 'NO'}."]
    return "\n".join(lines) + "\n"


def plot(s, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    curve(axes[0][0], [c["clients"] for c in s["clients"]], s["clients"], "distinct clients", "client_credentials ES256")
    axes[0][0].axhline(0.9 * s["clients"][0]["rps"], color="grey", linestyle=":", label="0.9 of one client")
    axes[0][0].legend(loc="lower left")
    curve(axes[0][1], [max(r["live"], 1) for r in s["refresh"]], s["refresh"], "other live refresh tokens (0 shown at 1)",
          "refresh ES256 (SQLite)")
    curve(axes[1][0], [max(a["rows"], 1) for a in s["audit"]], s["audit"], "audit rows (0 shown at 1)",
          "client_credentials ES256 (SQLite)")
    ax = axes[1][1]
    ax.plot([t for t, _ in s["rss"]["samples"]], [m for _, m in s["rss"]["samples"]])
    for ph in s["rss"]["phases"]:
        ax.axvspan(ph["from_s"], ph["to_s"], alpha=0.08 if ph["phase"] == "idle" else 0.2)
        if ph["phase"] != "idle":
            ax.text(ph["from_s"], 0.98, ph["phase"], rotation=90, fontsize=7, va="top",
                    transform=ax.get_xaxis_transform())
    ax.axhline(40, color="red", linestyle=":", label="40 MiB")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("RSS MiB")
    ax.set_title("Portero ES256 RSS over time")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def curve(ax, xs, runs, xlabel, title):
    ax.plot(xs, [r["rps"] for r in runs], marker="o", label="per second")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("per second")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    p99 = ax.twinx()
    p99.plot(xs, [r["p99_ms"] for r in runs], marker="x", linestyle="--", color="tab:red")
    p99.set_ylabel("p99 ms", color="tab:red")
    p99.set_ylim(bottom=0)


def main():
    results = measure()
    os.makedirs(run.OUT, exist_ok=True)
    with open(os.path.join(run.OUT, "scale.json"), "w") as f:
        json.dump(results, f, indent=2)
    plot(results, os.path.join(run.ROOT, "bench", "scale.png"))
    print(render(results))


if __name__ == "__main__":
    main()
