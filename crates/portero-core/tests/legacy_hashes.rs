//! Imported hashes made by independent tools: Python's `bcrypt` package, `hashlib`
//! (`pbkdf2_hmac`, `scrypt`) and `argon2-cffi`, run from the test. Each hash is parsed, verified
//! with the right password and refused with a wrong one; stored forms go back to Python where
//! a tool reads them. A missing tool is installed with pip, or the test says SKIPPED and why.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use portero_core::legacy_hash::{HashFormatError, LegacyHash, is_legacy_stored};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse ✓ battery staple";
const WRONG: &[&str] = &["correct horse ✓ battery stapl", "correct horse ✓ battery staplE", "", "x"];

/// Runs a Python script with `args`, returning its stdout lines parsed as JSON; `Err` says why not.
fn python(script: &str, args: &[&str]) -> Result<Vec<Value>, String> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .map_err(|error| format!("python3 could not run: {error}"))?;
    if !output.status.success() {
        return Err(format!("python3 failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let stdout = String::from_utf8(output.stdout).map_err(|_| "python3 printed non-UTF-8".to_owned())?;
    stdout.lines().map(|line| serde_json::from_str(line).map_err(|error| format!("{line}: {error}"))).collect()
}

/// Whether Python can import `module`, installing `package` with pip if it cannot.
fn python_module(module: &str, package: &str) -> Result<(), String> {
    python("", &[])?;
    let importable = || python(&format!("import {module}"), &[]).is_ok();
    if importable() {
        return Ok(());
    }
    let installed = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", package])
        .stdin(Stdio::null())
        .status()
        .map_err(|error| format!("pip could not run: {error}"))?;
    if installed.success() && importable() {
        Ok(())
    } else {
        Err(format!("Python module {module} is missing and `python3 -m pip install {package}` failed"))
    }
}

/// Runs `body` with the JSON lines of `script`, or says loudly that the test was skipped.
fn with_python(test: &str, requirement: Option<(&str, &str)>, script: &str, body: impl FnOnce(Vec<Value>)) {
    let ready = requirement.map_or(Ok(()), |(module, package)| python_module(module, package));
    match ready.and_then(|()| python(script, &[PASSWORD])) {
        Ok(rows) => {
            assert!(!rows.is_empty(), "{test}: the Python script printed nothing");
            body(rows);
        }
        Err(reason) => {
            // Straight to the stderr stream: the test harness hides `eprintln!` of passing tests.
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
        }
    }
}

/// Parses an import row, checks the right password matches and wrong ones do not, and that
/// the stored form reads back to the same hash. Returns the stored form.
fn check(row: &Value) -> Option<String> {
    let hash = LegacyHash::from_json(row).unwrap_or_else(|error| panic!("{row}: {error}"));
    let started = Instant::now();
    assert!(hash.verify(PASSWORD), "{row} ({hash:?}) refused the right password");
    let verify_time = started.elapsed();
    for wrong in WRONG {
        assert!(!hash.verify(wrong), "{row} accepted {wrong:?}");
    }
    let stored = hash.to_stored();
    if let Some(stored) = &stored {
        let again = LegacyHash::parse_stored(stored).unwrap_or_else(|error| panic!("{stored}: {error}"));
        assert_eq!(again, hash);
        assert!(again.verify(PASSWORD));
        assert_eq!(is_legacy_stored(stored), !hash.is_portero_native());
    }
    println!("{:<14} {:?} verified in {verify_time:.1?}", hash.kind(), hash);
    stored
}

#[test]
fn bcrypt_from_python() {
    let script = r#"
import sys, json, bcrypt
pw = sys.argv[1].encode()
for rounds in (4, 6):
    for prefix in (b"2a", b"2b"):
        print(json.dumps(bcrypt.hashpw(pw, bcrypt.gensalt(rounds, prefix)).decode()))
h = bcrypt.hashpw(pw, bcrypt.gensalt(5)).decode()
print(json.dumps(h.replace("$2b$", "$2y$", 1)))  # PHP's $2y$ is the same algorithm
print(json.dumps("{bcrypt}" + h))               # Spring Security's DelegatingPasswordEncoder
"#;
    with_python("bcrypt_from_python", Some(("bcrypt", "bcrypt")), script, |rows| {
        let stored: Vec<String> = rows.iter().filter_map(check).collect();
        assert_eq!(stored.len(), rows.len());
        // Python's bcrypt reads our stored forms back ($2y$ is its $2b$).
        let back = r#"
import sys, json, bcrypt
pw = sys.argv[1].encode()
for h in sys.argv[2:]:
    print(json.dumps(bcrypt.checkpw(pw, h.replace("$2y$", "$2b$", 1).encode())))
"#;
        let mut args = vec![PASSWORD];
        args.extend(stored.iter().map(String::as_str));
        let answers = python(back, &args).expect("python bcrypt reads stored forms");
        assert!(answers.iter().all(|answer| answer == &json!(true)), "{answers:?}");
    });
}

#[test]
fn keycloak_pbkdf2_from_python() {
    let script = r#"
import sys, json, hashlib, base64, os
pw = sys.argv[1].encode()
b64 = lambda b: base64.b64encode(b).decode()
# Keycloak's providers: pbkdf2-sha256 (27500), pbkdf2-sha512 (210000), legacy pbkdf2 = SHA-1.
for digest, name, iterations, length in (("sha256", "pbkdf2-sha256", 27500, 32), ("sha512", "pbkdf2-sha512", 210000, 64), ("sha1", "pbkdf2", 20000, 64)):
    salt = os.urandom(16)
    value = hashlib.pbkdf2_hmac(digest, pw, salt, iterations, length)
    print(json.dumps({"algorithm": name, "iterations": iterations, "salt": b64(salt), "value": b64(value)}))
    # The same credential as a Keycloak realm export writes it.
    print(json.dumps({
        "type": "password",
        "secretData": json.dumps({"value": b64(value), "salt": b64(salt), "additionalParameters": {}}),
        "credentialData": json.dumps({"hashIterations": iterations, "algorithm": name, "additionalParameters": {}}),
    }))
"#;
    with_python("keycloak_pbkdf2_from_python", None, script, |rows| {
        assert_eq!(rows.len(), 6);
        for row in &rows {
            let stored = check(row).expect("pbkdf2 has a stored form");
            assert!(stored.starts_with("$pbkdf2"), "{stored}");
        }
    });
}

#[test]
fn django_pbkdf2_from_python() {
    let script = r#"
import sys, json, hashlib, base64, secrets, string
pw = sys.argv[1].encode()
alphabet = string.ascii_letters + string.digits
for name, digest, iterations in (("pbkdf2_sha256", "sha256", 600000), ("pbkdf2_sha1", "sha1", 100000)):
    salt = "".join(secrets.choice(alphabet) for _ in range(22))  # Django's salt: a raw string
    value = base64.b64encode(hashlib.pbkdf2_hmac(digest, pw, salt.encode(), iterations)).decode().strip()
    print(json.dumps(f"{name}${iterations}${salt}${value}"))
"#;
    with_python("django_pbkdf2_from_python", None, script, |rows| {
        for row in &rows {
            check(row);
        }
    });
}

#[test]
fn scrypt_from_python() {
    let script = r#"
import sys, json, hashlib, base64, os
pw = sys.argv[1].encode()
b64 = lambda b: base64.b64encode(b).decode().rstrip("=")
for ln, r, p, length in ((14, 8, 1, 32), (12, 8, 2, 64), (10, 1, 1, 16)):
    salt = os.urandom(16)
    value = hashlib.scrypt(pw, salt=salt, n=2**ln, r=r, p=p, dklen=length)
    print(json.dumps(f"$scrypt$ln={ln},r={r},p={p}${b64(salt)}${b64(value)}"))
"#;
    with_python("scrypt_from_python", None, script, |rows| {
        for row in &rows {
            let stored = check(row).expect("scrypt has a stored form");
            assert_eq!(Some(stored.as_str()), row.as_str(), "canonical PHC in, same PHC out");
        }
    });
}

#[test]
fn argon2_from_python() {
    let script = r#"
import sys, json, os
from argon2 import PasswordHasher, Type
from argon2.low_level import hash_secret
pw = sys.argv[1]
for kind in (Type.ID, Type.I, Type.D):
    print(json.dumps(PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=kind).hash(pw)))
print(json.dumps(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=4, hash_len=16, type=Type.ID).hash(pw)))
# Argon2 version 1.0 (0x10), still met in old imports.
print(json.dumps(hash_secret(pw.encode(), os.urandom(16), time_cost=2, memory_cost=8192, parallelism=1, hash_len=32, type=Type.ID, version=16).decode()))
"#;
    with_python("argon2_from_python", Some(("argon2", "argon2-cffi")), script, |rows| {
        let mut stored = Vec::new();
        for row in &rows {
            let hash = LegacyHash::from_json(row).expect("argon2 parses");
            let native = row.as_str().is_some_and(|s| s.starts_with("$argon2id$v=19$"));
            assert_eq!(hash.is_portero_native(), native, "{row}");
            stored.push(check(row).expect("argon2 has a stored form"));
        }
        // Stored forms are plain PHC strings: argon2-cffi verifies them too.
        let back = r#"
import sys, json
from argon2 import PasswordHasher
for h in sys.argv[2:]:
    print(json.dumps(PasswordHasher().verify(h, sys.argv[1])))
"#;
        let mut args = vec![PASSWORD];
        args.extend(stored.iter().map(String::as_str));
        let answers = python(back, &args).expect("argon2-cffi reads stored forms");
        assert!(answers.iter().all(|answer| answer == &json!(true)), "{answers:?}");
    });
}

#[test]
fn plain_rows_are_handed_back_for_hashing() {
    let hash = LegacyHash::from_json(&json!(format!("plain:{PASSWORD}"))).expect("plain");
    let LegacyHash::Plain(secret) = &hash else { panic!("plain") };
    assert_eq!(secret.expose(), PASSWORD);
    assert_eq!(hash.to_stored(), None);
    assert!(!format!("{hash:?}").contains("horse"));
}

#[test]
fn hostile_rows_fail_fast_with_reasons() {
    let b64_32 = "Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs=";
    let keycloak = |iterations: Value| json!({"algorithm": "pbkdf2-sha256", "iterations": iterations, "salt": "c2FsdA==", "value": b64_32});
    let rows = [
        json!("$2b$31$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s."),
        json!("$2b$99$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s."),
        keycloak(json!(0)),
        keycloak(json!(1u64 << 40)),
        keycloak(json!(-27500)),
        keycloak(json!(1e300)),
        json!({"algorithm": "pbkdf2-sha256", "iterations": 27500, "salt": "c2FsdA==", "value": "%%%not base64%%%"}),
        json!({"algorithm": "pbkdf2-sha256", "iterations": 27500, "salt": "c2Fsd", "value": b64_32}),
        json!({"algorithm": "pbkdf2-sha256", "iterations": 27500, "salt": "c2FsdA==", "value": "QUFB".repeat(100)}),
        json!(format!("pbkdf2_sha256$1099511627776$salt${b64_32}")),
        json!(format!("pbkdf2_sha256$0$salt${b64_32}")),
        json!("$scrypt$ln=40,r=8,p=1$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs"),
        json!("$scrypt$ln=20,r=1024,p=1$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs"),
        json!("$scrypt$ln=14,r=8,p=4294967295$c2FsdA$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs"),
        json!("$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs"),
        json!("$argon2id$v=19$m=65536,t=4294967295,p=1$c29tZXNhbHQ$Eg+2z/z4syxD5yJSVsT4N6hlSMkszDVICAWYfLcL4Xs"),
        json!("$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$!!!"),
        json!(format!("$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ${}", "A".repeat(2000))),
        json!("$md5$rounds=5000$salt$hash"),
        json!("{MD5}abc"),
        json!("hunter2"),
        json!(null),
        json!([1, 2]),
    ];
    let started = Instant::now();
    for row in &rows {
        let error: HashFormatError = match LegacyHash::from_json(row) {
            Ok(hash) => panic!("{row} was accepted as {hash:?}"),
            Err(error) => error,
        };
        let message = error.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        println!("refused: {message}");
    }
    println!("{} hostile rows refused in {:.1?}", rows.len(), started.elapsed());
}

/// Parsing only, as an import does per row: prints the rate for 100k Keycloak-form rows.
/// Figures, not assertions (debug builds are ~10x slower than release).
#[test]
fn keycloak_import_parse_rate() {
    const ROWS: usize = 100_000;
    let lines: Vec<String> = (0..ROWS)
        .map(|i| {
            let salt = format!("{:016x}", i as u64 * 0x9e37_79b9);
            let value = format!("{:064x}", i as u128 * 0x2545_f491_4f6c_dd1d);
            let row = json!({
                "algorithm": if i % 2 == 0 { "pbkdf2-sha256" } else { "pbkdf2-sha512" },
                "iterations": 27_500,
                "salt": base64_of(salt.as_bytes()),
                "value": base64_of(&value.as_bytes()[..48]),
            });
            row.to_string()
        })
        .collect();

    let started = Instant::now();
    let mut parsed = 0usize;
    for line in &lines {
        let row: Value = serde_json::from_str(line).expect("json");
        if LegacyHash::from_json(&row).is_ok() {
            parsed += 1;
        }
    }
    let from_text = started.elapsed();
    assert_eq!(parsed, ROWS);

    let values: Vec<Value> = lines.iter().map(|line| serde_json::from_str(line).expect("json")).collect();
    let started = Instant::now();
    let stored: usize =
        values.iter().map(|row| LegacyHash::from_json(row).expect("parses").to_stored().map_or(0, |s| s.len())).sum();
    let from_value = started.elapsed();
    assert!(stored > 0);

    let rate = |elapsed: std::time::Duration| ROWS as f64 / elapsed.as_secs_f64();
    println!(
        "keycloak rows: {ROWS} parsed from JSON text in {from_text:.2?} ({:.0} rows/s); \
         from parsed JSON + to_stored in {from_value:.2?} ({:.0} rows/s); profile: {}",
        rate(from_text),
        rate(from_value),
        if cfg!(debug_assertions) { "debug" } else { "release" },
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
