"""Portero's load benchmark. Started by bench/run; see BENCHMARKS.md for what it measures.

Each figure is taken in this run, on this machine, with wrk as the load generator on the same
cores: client_credentials for RS256/ES256/EdDSA at 16 and 64 connections, the refresh grant on
SQLite and PostgreSQL, the password grant, introspection, peak RSS, cold start to first token;
the signing limit from `openssl speed -multi N`; and panva's oidc-provider as the reference peer.
"""

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import urllib.request
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTERO = os.path.join(ROOT, "target", "release", "portero")
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
METRICS_TOKEN = "bench-metrics-token-0123456789abcdef"
CORES = os.cpu_count() or 2
PG_URL = os.environ.get("PORTERO_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
OUT = os.path.join(ROOT, "bench", "results")
WORK = tempfile.mkdtemp(prefix="portero-bench-")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def post(url, body, headers):
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def openssl_speed():
    """Signatures per second with all cores: the physical limit for minting tokens."""
    out = subprocess.run(
        ["openssl", "speed", "-multi", str(CORES), "-seconds", "3", "rsa2048", "ecdsap256", "ed25519"],
        capture_output=True, text=True, check=True).stdout
    limits = {}
    for line in out.splitlines():
        fields = line.split()
        if line.startswith("+F") or not fields:
            continue
        if line.startswith("rsa 2048 bits"):
            limits["RS256"] = float(fields[5])
        elif "ecdsa (nistp256)" in line:
            limits["ES256"] = float(fields[-2])
        elif "EdDSA (Ed25519)" in line:
            limits["EdDSA"] = float(fields[-2])
    return limits


def argon2_rate():
    example = os.path.join(ROOT, "target", "release", "examples", "argon2_rate")
    return float(subprocess.run([example, str(CORES), "5"], capture_output=True, text=True, check=True).stdout)


LUA_STATIC = """
wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "{auth}"
"""

# Gives each wrk thread its number, `id` (0, 1, ...), for the scripts that split work by thread.
LUA_THREAD_ID = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
"""

# Each refresh token redeems once: every thread walks its own slice of a pre-issued list.
LUA_REFRESH = LUA_THREAD_ID + """
function init(args)
  tokens = {{}}
  for line in io.lines("{tokens}") do tokens[#tokens + 1] = line end
  step = tonumber(args[1])
  index = id + 1
end
function request()
  local token = tokens[index]
  index = index + step
  return wrk.format("POST", nil, {{["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "{auth}"}}, "grant_type=refresh_token&refresh_token=" .. token)
end
"""


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url, script, connections, threads=None, args=()):
    threads = threads or min(CORES, connections)
    path = os.path.join(WORK, f"script-{time.time_ns()}.lua")
    with open(path, "w") as f:
        f.write(script)
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{SECONDS}s", "--latency", "-s", path, url]
    if args:
        command += ["--", *args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = {"connections": connections, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        result[f"p{pct}_ms"] = to_ms(re.search(rf"\s{pct}%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = errors.group(1) if errors else ""
    return result


def rss_peak_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Portero:
    def __init__(self, name, alg, database_url=None):
        self.dir = os.path.join(WORK, name)
        os.makedirs(self.dir, exist_ok=True)
        self.url_db = database_url or f"sqlite://{self.dir}/portero.db"
        self.alg = alg
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, PORTERO_DATABASE_URL=self.url_db, RUST_LOG="warn",
                        PORTERO_MASTER_KEY=base64.b64encode(b"b" * 32).decode())
        self.process = None
        self.audit = {}

    def cli(self, *args, stdin=None):
        return subprocess.run([PORTERO, *args], cwd=self.dir, env=self.env, input=stdin, capture_output=True,
                              text=True, check=True).stdout.strip()

    def provision(self):
        self.tenant = self.cli("--create", "tenant", "create", "bench")  # a fresh SQLite file: --create
        self.secret = self.cli("client", "create", "--id", "bench", "--grants",
                               "client_credentials,password,refresh_token", "--scopes", "api", "--tenant", "bench")
        self.user = self.cli("user", "create", "--tenant", "bench", "--username", "merchant", stdin="bench-password\n")
        self.auth = basic("bench", self.secret)

    def start(self):
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [PORTERO, "serve", "--listen", f"127.0.0.1:{self.port}", "--signing-alg", self.alg,
             "--metrics-token", METRICS_TOKEN],
            cwd=self.dir, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def first_token_seconds(self):
        """Time from process start to the first 200 from the token endpoint."""
        while True:
            status, _ = post(f"{self.base}/oauth2/token", "grant_type=client_credentials",
                             {"Authorization": self.auth, "Content-Type": "application/x-www-form-urlencoded"})
            if status == 200:
                return time.monotonic() - self.started_at
            if time.monotonic() - self.started_at > 30:
                raise RuntimeError("portero did not answer within 30 s")
            time.sleep(0.002)

    def audit_figures(self):
        """portero_audit_events_dropped and portero_audit_backlog, from /metrics."""
        request = urllib.request.Request(f"{self.base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        text = urllib.request.urlopen(request, timeout=10).read().decode()
        figures = {}
        for name in ("portero_audit_events_dropped", "portero_audit_backlog"):
            found = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
            figures[name] = float(found.group(1)) if found else 0.0
        return figures

    def stop(self):
        peak = rss_peak_mib(self.process.pid)
        # Counted over every run this process served (the counters live as long as the process).
        for name, value in self.audit_figures().items():
            self.audit[name] = self.audit.get(name, 0) + value
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return peak

    def token(self, body):
        status, answer = post(f"{self.base}/oauth2/token", body,
                              {"Authorization": self.auth, "Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200, answer
        return json.loads(answer)


def refresh_rows(portero, count):
    """Refresh tokens as the password grant would store them, written straight to the table."""
    now = int(time.time())
    values, rows = [], []
    for i in range(count):
        value = secrets.token_urlsafe(32)
        digest = base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).rstrip(b"=").decode()
        values.append(value)
        rows.append((digest, f"bench-family-{i}", "bench", portero.user, portero.user, portero.tenant, "api",
                     portero.base, now, now, now + 86400))
    return values, rows


REFRESH_COLUMNS = ("hash, family_id, client_id, subject, user_id, tenants, scopes, audiences, auth_time, created_at, "
                   "expires_at")


def load_refresh_tokens(portero, count):
    values, rows = refresh_rows(portero, count)
    columns = REFRESH_COLUMNS
    if portero.url_db.startswith("sqlite"):
        db = sqlite3.connect(portero.url_db.removeprefix("sqlite://"))
        db.executemany(f"INSERT INTO refresh_tokens ({columns}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.commit()
        db.close()
    else:
        csv = os.path.join(WORK, "refresh.csv")
        with open(csv, "w") as f:
            f.writelines(",".join(map(str, row)) + "\n" for row in rows)
        subprocess.run(["psql", portero.url_db, "-q", "-c", f"\\copy refresh_tokens ({columns}) FROM '{csv}' CSV"],
                       check=True)
    path = os.path.join(WORK, f"tokens-{time.time_ns()}.txt")
    with open(path, "w") as f:
        f.write("\n".join(values) + "\n")
    return path


def refresh_bench(portero, connections=16):
    tokens = load_refresh_tokens(portero, 120_000)
    threads = min(CORES, connections)
    script = LUA_REFRESH.format(tokens=tokens, auth=portero.auth)
    return wrk(f"{portero.base}/oauth2/token", script, connections, threads, args=(str(threads),))


def postgres_database():
    name = f"portero_bench_{os.getpid()}"
    subprocess.run(["psql", PG_URL, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True)
    subprocess.run(["psql", PG_URL, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    return name, PG_URL.rsplit("/", 1)[0] + "/" + name


def main():
    os.makedirs(OUT, exist_ok=True)
    results = {"machine": machine(), "seconds_per_run": SECONDS, "cores": CORES}
    log("openssl speed ...")
    results["openssl_sign_per_s"] = limits = openssl_speed()
    log("argon2id verification rate ...")
    results["argon2_verify_per_s"] = argon2_rate()

    results["portero"] = {}
    for alg in ("RS256", "ES256", "EdDSA"):
        log(f"portero {alg} ...")
        p = Portero(alg.lower(), alg)
        p.provision()
        p.start().first_token_seconds()
        p.stop()  # the first start made the schema and the key; now a cold start on an existing database
        cold = p.start().first_token_seconds()
        runs = [wrk(f"{p.base}/oauth2/token", LUA_STATIC.format(body="grant_type=client_credentials", auth=p.auth), c)
                for c in (16, 64)]
        entry = {"cold_start_s": cold, "client_credentials": runs}
        if alg == "RS256":
            log("  password, introspection, refresh (SQLite) ...")
            password_body = "grant_type=password&username=merchant&password=bench-password"
            entry["password"] = wrk(f"{p.base}/oauth2/token", LUA_STATIC.format(body=password_body, auth=p.auth), 16)
            access = p.token("grant_type=client_credentials")["access_token"]
            entry["introspection"] = wrk(f"{p.base}/oauth2/introspect",
                                         LUA_STATIC.format(body=f"token={access}", auth=p.auth), 16)
        entry["refresh_sqlite"] = refresh_bench(p)
        entry["peak_rss_mib"] = p.stop()
        entry["audit_events_dropped"] = p.audit["portero_audit_events_dropped"]
        results["portero"][alg] = entry

    log("portero RS256 refresh on PostgreSQL ...")
    name, url = postgres_database()
    p = Portero("postgres", "RS256", url)
    p.provision()
    p.start().first_token_seconds()
    pg = {"client_credentials_16": wrk(f"{p.base}/oauth2/token",
                                       LUA_STATIC.format(body="grant_type=client_credentials", auth=p.auth), 16),
          "refresh": refresh_bench(p)}
    pg["peak_rss_mib"] = p.stop()
    pg["audit_events_dropped"] = p.audit["portero_audit_events_dropped"]
    results["portero_postgres_RS256"] = pg
    subprocess.run(["psql", PG_URL, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)

    log("portero ES256: client_secret_basic vs private_key_jwt vs private_key_jwt + DPoP ...")
    import proofs  # bench/proofs.py; imported here, as it imports this module
    results["client_authentication"] = proofs.measure()

    log("curves: hello peer, clients, live refresh tokens, audit rows, RSS over time, two nodes ...")
    import scale  # bench/scale.py; imported here, as it imports this module
    results["scale"] = scale.measure()

    log("oidc-provider (reference peer) ...")
    port = free_port()
    node = subprocess.Popen(["node", "server.mjs", str(port)], cwd=os.path.join(ROOT, "bench", "oidc-provider"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    auth = basic("bench", "bench-secret")
    started = time.monotonic()
    while post(f"http://127.0.0.1:{port}/token", "grant_type=client_credentials",
               {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})[0] != 200:
        if time.monotonic() - started > 30:
            raise RuntimeError("oidc-provider did not start")
        time.sleep(0.01)
    cold = time.monotonic() - started
    runs = [wrk(f"http://127.0.0.1:{port}/token", LUA_STATIC.format(body="grant_type=client_credentials", auth=auth), c)
            for c in (16, 64)]
    results["oidc_provider"] = {"cold_start_s": cold, "client_credentials": runs, "peak_rss_mib": rss_peak_mib(node.pid)}
    node.send_signal(signal.SIGTERM)
    node.wait(timeout=10)

    with open(os.path.join(OUT, "latest.json"), "w") as f:
        json.dump(results, f, indent=2)
    report = render(results)
    with open(os.path.join(OUT, "latest.md"), "w") as f:
        f.write(report)
    plot(results, os.path.join(ROOT, "bench", "throughput.png"))
    scale.plot(results["scale"], os.path.join(ROOT, "bench", "scale.png"))
    print(report)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": CORES, "openssl": openssl, "wrk": wrk_version, "node": node,
            "kernel": os.uname().release}


def render(r):
    limits, peer = r["openssl_sign_per_s"], r["oidc_provider"]["client_credentials"]
    peer_rate = {run["connections"]: run["rps"] for run in peer}
    lines = [f"Machine: {r['machine']['cpu']}, {r['cores']} cores; {r['machine']['openssl']}; "
             f"{r['machine']['wrk']}; node {r['machine']['node']}. {r['seconds_per_run']} s per run, "
             "wrk on the same cores.", "",
             "| what | conns | tokens/s | p50 ms | p99 ms | non-2xx | of signing limit | vs oidc-provider |",
             "|---|---|---|---|---|---|---|---|"]
    for alg, entry in r["portero"].items():
        for run in entry["client_credentials"]:
            lines.append(f"| client_credentials {alg} | {run['connections']} | {run['rps']:.0f} | {run['p50_ms']:.2f} | "
                         f"{run['p99_ms']:.2f} | {run['non_2xx']} | {run['rps'] / limits[alg]:.0%} of {limits[alg]:.0f} | "
                         f"{run['rps'] / peer_rate[run['connections']]:.2f}x |")
        refresh = entry["refresh_sqlite"]
        cc16 = entry["client_credentials"][0]["rps"]
        lines.append(f"| refresh {alg} (SQLite) | 16 | {refresh['rps']:.0f} | {refresh['p50_ms']:.2f} | "
                     f"{refresh['p99_ms']:.2f} | {refresh['non_2xx']} | {refresh['rps'] / cc16:.0%} of its client_credentials | |")
    rs = r["portero"]["RS256"]
    pw, intro = rs["password"], rs["introspection"]
    lines.append(f"| password RS256 (argon2id) | 16 | {pw['rps']:.1f} | {pw['p50_ms']:.1f} | {pw['p99_ms']:.1f} | "
                 f"{pw['non_2xx']} | {pw['rps'] / r['argon2_verify_per_s']:.0%} of {r['argon2_verify_per_s']:.1f} argon2id verifications/s | |")
    lines.append(f"| introspection RS256 | 16 | {intro['rps']:.0f} | {intro['p50_ms']:.2f} | {intro['p99_ms']:.2f} | "
                 f"{intro['non_2xx']} | | |")
    pg = r["portero_postgres_RS256"]
    for label, run in (("client_credentials RS256 (PostgreSQL)", pg["client_credentials_16"]), ("refresh RS256 (PostgreSQL)", pg["refresh"])):
        lines.append(f"| {label} | 16 | {run['rps']:.0f} | {run['p50_ms']:.2f} | {run['p99_ms']:.2f} | {run['non_2xx']} | | |")
    for run in peer:
        lines.append(f"| oidc-provider RS256 (peer) | {run['connections']} | {run['rps']:.0f} | {run['p50_ms']:.2f} | "
                     f"{run['p99_ms']:.2f} | {run['non_2xx']} | {run['rps'] / limits['RS256']:.0%} of {limits['RS256']:.0f} | 1.00x |")
    lines += ["", "| process | peak RSS MiB | cold start to first token |", "|---|---|---|"]
    for alg, entry in r["portero"].items():
        lines.append(f"| portero {alg} (SQLite) | {entry['peak_rss_mib']:.1f} | {entry['cold_start_s'] * 1000:.0f} ms |")
    lines.append(f"| portero RS256 (PostgreSQL) | {pg['peak_rss_mib']:.1f} | |")
    lines.append(f"| oidc-provider | {r['oidc_provider']['peak_rss_mib']:.1f} | {r['oidc_provider']['cold_start_s'] * 1000:.0f} ms |")
    dropped = [f"{alg} {entry['audit_events_dropped']:.0f}" for alg, entry in r["portero"].items()]
    dropped.append(f"RS256 on PostgreSQL {pg['audit_events_dropped']:.0f}")
    lines += ["", "Audit events dropped over every run (`portero_audit_events_dropped`): " + ", ".join(dropped) + "."]
    if "client_authentication" in r:
        import proofs
        lines += ["", proofs.render(r["client_authentication"])]
    if "scale" in r:
        import scale
        lines += ["", scale.render(r["scale"], r["portero"])]
    lines += ["", f"Signing limits (`openssl speed -multi {r['cores']}`): " +
              ", ".join(f"{k} {v:.0f}/s" for k, v in limits.items()) + "."]
    return "\n".join(lines) + "\n"


def plot(r, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for alg, entry in r["portero"].items():
        runs = entry["client_credentials"]
        ax.plot([x["connections"] for x in runs], [x["rps"] for x in runs], marker="o", label=f"Portero {alg}")
    peer = r["oidc_provider"]["client_credentials"]
    ax.plot([x["connections"] for x in peer], [x["rps"] for x in peer], marker="s", linestyle="--", label="oidc-provider RS256")
    ax.axhline(r["openssl_sign_per_s"]["RS256"], color="grey", linestyle=":", label="RSA-2048 signing limit")
    ax.set_xlabel("connections (wrk)")
    ax.set_ylabel("client_credentials tokens/s")
    ax.set_yscale("log")
    ax.set_xticks([16, 64])
    ax.set_title(f"Token throughput on {r['cores']} cores ({r['seconds_per_run']} s per point)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
