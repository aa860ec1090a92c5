//! Malformed and hostile requests: each answered with a 4xx RFC error; the server stays up.

use crate::harness::*;

async fn raw(
    server: &Server,
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut request = server.http.post(server.url("/oauth2/token")).body(body);
    if let Some(ct) = content_type {
        request = request.header("Content-Type", ct);
    }
    if let Some(auth) = authorization {
        request = request.header("Authorization", auth);
    }
    let (status, headers, body) = send(request).await;
    assert_eq!(headers["cache-control"], "no-store");
    (status, body)
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fn assert_rfc_4xx((status, body): (u16, serde_json::Value), label: &str) {
    assert!((400..500).contains(&status), "{label}: status {status}");
    let code = body["error"].as_str().unwrap_or_else(|| panic!("{label}: no error member in {body}"));
    let known = ["invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type", "invalid_scope"];
    assert!(known.contains(&code), "{label}: {code}");
}

#[tokio::test]
async fn malformed_requests_get_rfc_errors() {
    let server = Server::start().await;
    let cc = b"grant_type=client_credentials".to_vec();
    assert_rfc_4xx(raw(&server, FORM, None, vec![b'a'; 1024 * 1024]).await, "1 MiB body");
    assert_rfc_4xx(raw(&server, FORM, None, b"grant_type=%FF%FE".to_vec()).await, "invalid UTF-8 escape");
    assert_rfc_4xx(raw(&server, FORM, None, vec![b'g', 0xff, b'=', 0xfe]).await, "invalid UTF-8 bytes");
    assert_rfc_4xx(raw(&server, FORM, None, b"grant_type=client%00_credentials".to_vec()).await, "NUL byte");
    assert_rfc_4xx(raw(&server, Some("text/plain"), None, cc.clone()).await, "text/plain");
    assert_rfc_4xx(raw(&server, Some("multipart/form-data; boundary=x"), None, cc.clone()).await, "multipart");
    assert_rfc_4xx(raw(&server, None, None, cc.clone()).await, "no content type");
    assert_rfc_4xx(raw(&server, Some("application/json"), None, b"{\"grant_type\":".to_vec()).await, "truncated JSON");
    assert_rfc_4xx(raw(&server, Some("application/json"), None, b"[\"a\"]".to_vec()).await, "JSON array");
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
    assert_rfc_4xx(raw(&server, Some("application/json"), None, deep.into_bytes()).await, "deep JSON");
    let many = (0..5000).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&");
    assert_rfc_4xx(raw(&server, FORM, None, many.into_bytes()).await, "many parameters");
    assert_rfc_4xx(
        raw(&server, FORM, None, b"grant_type=password&grant_type=client_credentials".to_vec()).await,
        "duplicates",
    );
    let json_dupes = br#"{"grant_type":"client_credentials","grant_type":"password"}"#.to_vec();
    assert_rfc_4xx(raw(&server, Some("application/json"), None, json_dupes).await, "JSON duplicates");
    let long = format!("grant_type={}", "x".repeat(5000));
    assert_rfc_4xx(raw(&server, FORM, None, long.into_bytes()).await, "oversized field");
    assert!(server.http.get(server.url("/healthz")).send().await.unwrap().status().is_success());
}

#[tokio::test]
async fn bad_basic_headers_get_rfc_errors() {
    let server = Server::start().await;
    let cc = || b"grant_type=client_credentials".to_vec();
    for header in [
        "Basic",
        "Basic !!!not-base64",
        "Basic bm8tY29sb24=",
        "Basic OnNlY3JldA==",
        "Bearer abc.def.ghi",
        "Digest username=x",
        "Basic /w==",
    ] {
        assert_rfc_4xx(raw(&server, FORM, Some(header), cc()).await, header);
    }
    let huge = format!("Basic {}", "A".repeat(6000));
    assert_rfc_4xx(raw(&server, FORM, Some(&huge), cc()).await, "huge Basic");
    assert!(server.http.get(server.url("/healthz")).send().await.unwrap().status().is_success());
}

#[tokio::test]
async fn echoed_action_is_restricted() {
    let server = Server::start().await;
    let body = serde_json::json!({ "action": "<script>\r\nX: y", "grant_type": "client_credentials" });
    let (status, _, answer) = server.post_json("/oauth2/token", &[("ALG-API-VERSION", API_VERSION)], &body).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_request")));
    assert!(!answer.to_string().contains("<script>"));
}

/// Reads what the server sends until it closes the connection, or gives up after `limit`.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: std::time::Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn slowloris_headers_are_cut_off_at_the_read_timeout() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: portero\r\n").await.unwrap();
    // One header byte every 200 ms: never a complete request head.
    let trickle = async {
        for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter().cycle() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
        }
    };
    let cut_off = tokio::time::timeout(READ_TIMEOUT * 3, trickle).await;
    assert!(cut_off.is_ok(), "the server kept a trickling connection open past {:?}", READ_TIMEOUT * 3);
    let held = started.elapsed();
    assert!(held >= READ_TIMEOUT && held < READ_TIMEOUT * 3, "held for {held:?}");
    assert_eq!(server.http.get(server.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_at_the_read_timeout() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = "POST /oauth2/token HTTP/1.1\r\nHost: portero\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                Content-Length: 100\r\n\r\ngrant_type=";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut stream, READ_TIMEOUT * 3).await.expect("the server never answered");
    assert!(started.elapsed() >= READ_TIMEOUT, "answered before the timeout: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");
}

#[tokio::test]
async fn an_idle_connection_that_sends_nothing_is_closed() {
    let server = Server::start().await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let answer = read_until_closed(&mut stream, READ_TIMEOUT * 3).await;
    assert_eq!(answer.as_deref(), Some(""), "the connection was not closed");
}

#[tokio::test]
async fn oversized_request_heads_are_refused() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let huge = "a".repeat(100 * 1024);
    let many: String = (0..200).map(|i| format!("X-Many-{i}: x\r\n")).collect();
    for (label, headers) in [("a 100 KiB header", format!("X-Padding: {huge}\r\n")), ("200 headers", many)] {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: portero\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: 29\r\n\r\ngrant_type=client_credentials"
        );
        // The server may stop reading and answer before everything is written.
        let _ = stream.write_all(head.as_bytes()).await;
        let answer = read_until_closed(&mut stream, READ_TIMEOUT * 3).await.unwrap_or_default();
        assert!(answer.starts_with("HTTP/1.1 431"), "{label}: {answer}");
    }
    assert_eq!(server.http.get(server.url("/healthz")).send().await.unwrap().status(), 200);
}
