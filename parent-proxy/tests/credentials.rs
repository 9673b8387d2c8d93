//! AWS credentials for the enclave: IMDSv2 against a fake metadata service on loopback,
//! static profiles, and the store service handing them out on `GetCredentials`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::Router;
use ea_protocol::rpc::{Connection, ConnectionLimits};
use ea_protocol::{Address, ErrorCode, Listener, StoreRequest, StoreResponse};
use parent_proxy::credentials::{
    read_profile, CredentialsError, CredentialsSource, CredentialsSpec, ImdsCredentials,
};
use parent_proxy::store::service::{self, StoreService};
use parent_proxy::store::MemoryLogStore;

const TOKEN: &str = "imds-session-token";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLETOKEN";

#[derive(Clone)]
struct FakeImds {
    requests: Arc<AtomicUsize>,
    /// Seconds until the credentials it hands out expire.
    lifetime_secs: i64,
    role: &'static str,
}

fn has_token(headers: &HeaderMap) -> bool {
    headers
        .get("x-aws-ec2-metadata-token")
        .is_some_and(|v| v == TOKEN)
}

async fn token(State(imds): State<FakeImds>, headers: HeaderMap) -> (StatusCode, String) {
    imds.requests.fetch_add(1, Ordering::SeqCst);
    // IMDSv2 refuses a token request without a TTL.
    match headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
        Some(_) => (StatusCode::OK, TOKEN.to_owned()),
        None => (StatusCode::BAD_REQUEST, String::new()),
    }
}

async fn roles(State(imds): State<FakeImds>, headers: HeaderMap) -> (StatusCode, String) {
    imds.requests.fetch_add(1, Ordering::SeqCst);
    if !has_token(&headers) {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    if imds.role.is_empty() {
        return (StatusCode::NOT_FOUND, String::new());
    }
    (StatusCode::OK, format!("{}\n", imds.role))
}

async fn document(
    State(imds): State<FakeImds>,
    axum::extract::Path(role): axum::extract::Path<String>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    imds.requests.fetch_add(1, Ordering::SeqCst);
    if !has_token(&headers) || role != imds.role {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    let expiration = time::OffsetDateTime::now_utc() + time::Duration::seconds(imds.lifetime_secs);
    let expiration = expiration
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body = serde_json::json!({
        "Code": "Success",
        "LastUpdated": "2024-06-01T00:00:00Z",
        "Type": "AWS-HMAC",
        "AccessKeyId": "ASIAEXAMPLE",
        "SecretAccessKey": SECRET,
        "Token": SESSION_TOKEN,
        "Expiration": expiration,
    });
    (StatusCode::OK, body.to_string())
}

async fn start_imds(lifetime_secs: i64, role: &'static str) -> (String, Arc<AtomicUsize>) {
    let state = FakeImds {
        requests: Arc::new(AtomicUsize::new(0)),
        lifetime_secs,
        role,
    };
    let requests = state.requests.clone();
    let app = Router::new()
        .route("/latest/api/token", put(token))
        .route("/latest/meta-data/iam/security-credentials/", get(roles))
        .route(
            "/latest/meta-data/iam/security-credentials/{role}",
            get(document),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, requests)
}

#[tokio::test]
async fn imdsv2_credentials_are_fetched_and_cached_until_near_expiry() {
    let (url, requests) = start_imds(6 * 3600, "EnclaveInstanceRole").await;
    let imds = ImdsCredentials::new(&url).unwrap();
    let credentials = imds.credentials().await.unwrap();
    assert_eq!(credentials.access_key_id, "ASIAEXAMPLE");
    assert_eq!(credentials.secret_access_key.expose(), SECRET);
    assert_eq!(
        credentials.session_token.as_ref().unwrap().expose(),
        SESSION_TOKEN
    );
    let expires_in = credentials.expiration_ms.unwrap() as i64
        - time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    assert!((6 * 3600 - 5) * 1000 < expires_in && expires_in <= 6 * 3600 * 1000);
    // Token, role, document.
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    // Secrets stay out of Debug.
    let printed = format!("{credentials:?}");
    assert!(
        !printed.contains(SECRET) && !printed.contains(SESSION_TOKEN),
        "{printed}"
    );

    // Kept while far from expiry.
    imds.credentials().await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 3);

    // Credentials within ten minutes of expiry are fetched again.
    let (url, requests) = start_imds(5 * 60, "EnclaveInstanceRole").await;
    let imds = ImdsCredentials::new(&url).unwrap();
    imds.credentials().await.unwrap();
    imds.credentials().await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn imds_failures_say_which_step_failed() {
    let (url, _) = start_imds(3600, "").await;
    let error = ImdsCredentials::new(&url)
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(
            error,
            CredentialsError::Imds {
                step: "role name",
                ..
            }
        ) && text.contains("404"),
        "{text}"
    );

    // Nothing listening.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = ImdsCredentials::new(&url)
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CredentialsError::Imds {
                step: "session token",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn static_profiles_are_read_from_an_aws_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    std::fs::write(
        &path,
        "# local runs\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n\
         [profile enclave]\naws_access_key_id=AKIAENCLAVE\naws_secret_access_key=s2\naws_session_token = t2\n\
         [broken]\naws_access_key_id = AKIABROKEN\n",
    )
    .unwrap();
    let default = read_profile(&path, "default").unwrap();
    assert_eq!(
        (
            default.access_key_id.as_str(),
            default.secret_access_key.expose()
        ),
        ("AKIADEFAULT", "s1")
    );
    assert_eq!(default.session_token, None);
    assert_eq!(default.expiration_ms, None);
    let enclave = read_profile(&path, "enclave").unwrap();
    assert_eq!(enclave.session_token.unwrap().expose(), "t2");
    assert!(read_profile(&path, "missing")
        .unwrap_err()
        .to_string()
        .contains("no [missing] profile"));
    assert!(read_profile(&path, "broken")
        .unwrap_err()
        .to_string()
        .contains("needs aws_access_key_id and aws_secret_access_key"));
    assert!(matches!(
        read_profile(&dir.path().join("nope"), "default"),
        Err(CredentialsError::File { .. })
    ));

    assert_eq!(
        "static:/x/y".parse::<CredentialsSpec>().unwrap(),
        CredentialsSpec::Static("/x/y".into())
    );
    assert_eq!(
        "imds".parse::<CredentialsSpec>().unwrap(),
        CredentialsSpec::Imds
    );
    assert!("static:".parse::<CredentialsSpec>().is_err());
    assert!("env".parse::<CredentialsSpec>().is_err());
}

async fn ask_store(source: Option<CredentialsSource>) -> StoreResponse {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::Unix(dir.path().join("store.sock"));
    let listener = Listener::bind(&address).await.unwrap();
    let mut store = StoreService::new(Arc::new(MemoryLogStore::new()), 1 << 20);
    if let Some(source) = source {
        store = store.with_credentials(Arc::new(source));
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(service::serve(
        listener,
        store,
        ConnectionLimits::default(),
        stopped,
    ));
    let connection =
        Connection::<StoreRequest, StoreResponse>::connect(&address, ConnectionLimits::default())
            .await
            .unwrap();
    let reply = connection
        .call(&StoreRequest::GetCredentials)
        .await
        .unwrap();
    stop.send(true).unwrap();
    drop(connection);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    reply
}

#[tokio::test]
async fn the_store_service_hands_out_credentials() {
    let (url, _) = start_imds(3600, "EnclaveInstanceRole").await;
    let reply = ask_store(Some(CredentialsSource::Imds(
        ImdsCredentials::new(&url).unwrap(),
    )))
    .await;
    let StoreResponse::Credentials {
        access_key_id,
        secret_access_key,
        session_token,
        expiration_ms,
    } = reply
    else {
        panic!("{reply:?}");
    };
    assert_eq!(access_key_id, "ASIAEXAMPLE");
    assert_eq!(secret_access_key.expose(), SECRET);
    assert_eq!(session_token.unwrap().expose(), SESSION_TOKEN);
    assert!(expiration_ms.is_some());

    let StoreResponse::Error(error) = ask_store(None).await else {
        panic!("expected an error");
    };
    assert_eq!(error.code, ErrorCode::CredentialsUnavailable);
    assert!(
        error.message.contains("--aws-credentials"),
        "{}",
        error.message
    );
}
