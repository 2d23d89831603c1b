//! A real HTTP upstream for plugins to call, on 127.0.0.1 with a port from the OS.

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The API key the test upstream accepts.
pub const API_KEY: &str = "test-key-5f3a9c";

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// The raw (still percent-encoded) query string.
    pub raw_query: String,
    pub params: HashMap<String, String>,
}

/// A real HTTP server shaped like OpenWeatherMap's current-weather API.
///
/// Cities with special behaviour: `Atlantis` 404, `Ratelimit` 429, `Meltdown` 503,
/// `Garbled` 200 with a body that is not JSON, `Partial` 200 without `main`. A wrong
/// `appid` gets 401. Anything else gets a report whose `name` is the city. `/endless`
/// answers 200 and a body that never ends (the connection stays open); `/slow?ms=N` is
/// recorded at once and answers 200 after N ms; `/redirect?to=URL` answers 302 to URL.
pub struct Upstream {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    pub async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/data/2.5/weather", axum::routing::get(weather))
            .route("/endless", axum::routing::get(endless))
            .route("/slow", axum::routing::get(slow))
            .route("/redirect", axum::routing::get(redirect))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, requests }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn slow(
    State(requests): State<Arc<Mutex<Vec<Recorded>>>>,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let ms = params.get("ms").and_then(|ms| ms.parse().ok()).unwrap_or(0);
    requests.lock().unwrap().push(Recorded {
        path: uri.path().to_owned(),
        raw_query: uri.query().unwrap_or("").to_owned(),
        params,
    });
    tokio::time::sleep(Duration::from_millis(ms)).await;
    (StatusCode::OK, "slow").into_response()
}

async fn redirect(Query(params): Query<HashMap<String, String>>) -> Response {
    let to = params.get("to").cloned().unwrap_or_default();
    (StatusCode::FOUND, [(axum::http::header::LOCATION, to)]).into_response()
}

async fn endless() -> Response {
    let first =
        futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from("tick")) });
    let body = axum::body::Body::from_stream(first.chain(futures::stream::pending()));
    (StatusCode::OK, body).into_response()
}

async fn weather(
    State(requests): State<Arc<Mutex<Vec<Recorded>>>>,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    requests.lock().unwrap().push(Recorded {
        path: uri.path().to_owned(),
        raw_query: uri.query().unwrap_or("").to_owned(),
        params: params.clone(),
    });
    if params.get("appid").map(String::as_str) != Some(API_KEY) {
        let body = r#"{"cod":401,"message":"Invalid API key."}"#;
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    let city = params.get("q").cloned().unwrap_or_default();
    let imperial = params.get("units").map(String::as_str) == Some("imperial");
    match city.as_str() {
        "Atlantis" => (
            StatusCode::NOT_FOUND,
            r#"{"cod":"404","message":"city not found"}"#,
        )
            .into_response(),
        "Ratelimit" => (StatusCode::TOO_MANY_REQUESTS, r#"{"cod":429}"#).into_response(),
        "Meltdown" => (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response(),
        "Garbled" => (StatusCode::OK, "{this is not json").into_response(),
        "Partial" => (StatusCode::OK, r#"{"name":"Partial","cod":200}"#).into_response(),
        _ => {
            let (temp, wind) = if imperial { (70.7, 7.8) } else { (21.5, 3.5) };
            let body = serde_json::json!({
                "name": city,
                "cod": 200,
                "main": {"temp": temp, "humidity": 40, "pressure": 1012},
                "weather": [{"id": 800, "main": "Clear", "description": "clear sky"}],
                "wind": {"speed": wind, "deg": 90},
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    }
}
