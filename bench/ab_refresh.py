"""Side by side: client credentials and refresh (c16, 120,000 pre-written refresh tokens, as
`run.refresh_bench`) for two or more builds, interleaved per round, each on a fresh database, so
every figure of one table comes from one run.

    git worktree add /work/wt-before 1d80bfb
    (cd /work/wt-before && CARGO_TARGET_DIR=target cargo build --release -p portero --bin portero)
    BENCH_SECONDS=10 python3 bench/ab_refresh.py ES256 2 /work/wt-before/target/release/portero target/release/portero
    python3 bench/ab_refresh.py EdDSA 1 --postgres BEFORE AFTER     # on PORTERO_TEST_POSTGRES_URL

Prints one line per build and round: cc/s, refresh/s, their p99 and ratio, peak RSS."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run


def measure(binary, alg, label, postgres):
    run.PORTERO = binary
    name, url = run.postgres_database() if postgres else (None, None)
    p = run.Portero(label, alg, url)
    p.provision()
    p.start().first_token_seconds()
    body = run.LUA_STATIC.format(body="grant_type=client_credentials", auth=p.auth)
    cc = run.wrk(f"{p.base}/oauth2/token", body, 16)
    refresh = run.refresh_bench(p)
    rss = p.stop()
    if name:
        subprocess.run(["psql", run.PG_URL, "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)
    return cc, refresh, rss


def main():
    alg, rounds, *rest = sys.argv[1:]
    postgres = "--postgres" in rest
    binaries = [b for b in rest if b != "--postgres"]
    for round_ in range(int(rounds)):
        for index, binary in enumerate(binaries):
            cc, refresh, rss = measure(binary, alg, f"ab-{alg}-{round_}-{index}", postgres)
            print(f"{alg} round {round_} build {index} {binary}: cc {cc['rps']:.0f}/s p99 {cc['p99_ms']:.2f} ms, "
                  f"refresh {refresh['rps']:.0f}/s p99 {refresh['p99_ms']:.2f} ms non-2xx {refresh['non_2xx']}, "
                  f"refresh/cc {refresh['rps'] / cc['rps']:.2f}, peak RSS {rss:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
