"""A subset of bench/run.py for iterating on one figure: `python3 bench/quick.py ES256 [postgres]`.
Prints client_credentials and refresh at 16 connections. Needs a release build (bench/run makes it)."""

import sys

import run as bench


def main():
    alg = sys.argv[1] if len(sys.argv) > 1 else "ES256"
    on_postgres = len(sys.argv) > 2 and sys.argv[2] == "postgres"
    url = bench.postgres_database()[1] if on_postgres else None
    p = bench.Portero(f"quick-{alg.lower()}", alg, url)
    p.provision()
    p.start().first_token_seconds()
    cc = bench.wrk(f"{p.base}/oauth2/token",
                   bench.LUA_STATIC.format(body="grant_type=client_credentials", auth=p.auth), 16)
    refresh = bench.refresh_bench(p)
    rss = p.stop()
    print(f"{alg} {'postgres' if on_postgres else 'sqlite'}: client_credentials {cc}")
    print(f"{alg} {'postgres' if on_postgres else 'sqlite'}: refresh {refresh} ({refresh['rps'] / cc['rps']:.0%} of cc)")
    print(f"peak RSS {rss:.1f} MiB")


main()
