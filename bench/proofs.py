"""Client authentication and DPoP under load (issue 13's benchmark): ES256 client credentials
with HTTP Basic, with private_key_jwt, and with private_key_jwt + DPoP, side by side in one run,
each request with its own assertion and proof (signed ahead of time by the `presign` example,
so wrk only sends them). Run by bench/run, or alone after building:

    cargo build --release -p portero --bin portero && cargo build --release -p portero-client --example presign
    python3 bench/proofs.py
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the shared Portero, wrk and log helpers)

PRESIGN = os.path.join(run.ROOT, "target", "release", "examples", "presign")
ASSERTION_TYPE = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
# Enough signed requests for the run at 25k/s; any beyond would be replays (counted as non-2xx).
PER_SECOND = 25_000

LUA_SIGNED = run.LUA_THREAD_ID + """
function init(args)
  lines = {{}}
  for line in io.lines(args[1] .. "." .. id) do lines[#lines + 1] = line end
  index = 1
end
function request()
  local line = lines[index]
  index = index % #lines + 1
  local assertion, proof = line:match("^(%S+) ?(%S*)$")
  local headers = {{["Content-Type"] = "application/x-www-form-urlencoded"}}
  if proof ~= "" then headers["DPoP"] = proof end
  return wrk.format("POST", nil, headers,
    "grant_type=client_credentials&client_assertion_type={assertion_type}&client_assertion=" .. assertion)
end
"""


def genkey(path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path],
                   check=True, capture_output=True)


def signed_run(p, url, key, dpop_key, connections=16):
    threads = min(run.CORES, connections)
    prefix = os.path.join(run.WORK, f"signed-{'dpop' if dpop_key else 'pk'}")
    count = PER_SECOND * run.SECONDS
    command = [PRESIGN, key, "pk", url, str(count), str(threads), prefix] + ([dpop_key] if dpop_key else [])
    subprocess.run(command, check=True)
    return run.wrk(url, LUA_SIGNED.format(assertion_type=ASSERTION_TYPE), connections, threads, args=(prefix,))


def measure():
    p = run.Portero("proofs", "ES256")
    p.provision()
    key, dpop_key = os.path.join(p.dir, "assertion.pem"), os.path.join(p.dir, "dpop.pem")
    genkey(key)
    genkey(dpop_key)
    jwks = subprocess.run([PRESIGN, "--jwks", key, "bench"], check=True, capture_output=True, text=True).stdout
    with open(os.path.join(p.dir, "jwks.json"), "w") as f:
        f.write(jwks)
    p.cli("client", "create", "--id", "pk", "--grants", "client_credentials", "--scopes", "api", "--tenant", "bench",
          "--auth-method", "private_key_jwt", "--jwks", "jwks.json")
    p.start().first_token_seconds()
    url = f"{p.base}/oauth2/token"
    run.log("  client_secret_basic ...")
    basic = run.wrk(url, run.LUA_STATIC.format(body="grant_type=client_credentials", auth=p.auth), 16)
    run.log("  private_key_jwt ...")
    pk = signed_run(p, url, key, None)
    run.log("  private_key_jwt + DPoP ...")
    dpop = signed_run(p, url, key, dpop_key)
    peak = p.stop()
    return {"basic": basic, "private_key_jwt": pk, "private_key_jwt_dpop": dpop, "peak_rss_mib": peak,
            "private_key_jwt_ratio": pk["rps"] / basic["rps"], "dpop_ratio": dpop["rps"] / basic["rps"]}


def render(r):
    rows = [("client_secret_basic", r["basic"]), ("private_key_jwt", r["private_key_jwt"]),
            ("private_key_jwt + DPoP", r["private_key_jwt_dpop"])]
    lines = ["| ES256 client credentials, c16 | req/s | of Basic | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|---|"]
    for name, f in rows:
        lines.append(f"| {name} | {f['rps']:,.0f} | {f['rps'] / r['basic']['rps']:.2f} | {f['p50_ms']:.2f} | "
                     f"{f['p99_ms']:.2f} | {f['non_2xx']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.makedirs(run.OUT, exist_ok=True)
    results = measure()
    with open(os.path.join(run.OUT, "proofs.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(render(results))
