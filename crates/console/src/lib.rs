//! The web console: static HTML, CSS and plain JavaScript modules embedded
//! in the binary and served at `/`. The browser code is a client of the
//! REST API: it calls the same `/v2/...` endpoints, with the token the
//! user gave (kept in sessionStorage, sent as `Authorization: Bearer`).
//! The only thing served here that is not a file is the list of the dev
//! server's users, whose tokens are public, documented dev credentials.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rust_embed::Embed;
use serde::Serialize;

#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

/// A user the dev server offers on its sign-in page.
#[derive(Debug, Clone, Serialize)]
pub struct DevUser {
    pub id: String,
    pub token: String,
}

#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// `qstash dev`'s users; empty for `qstash serve`, whose sign-in page
    /// asks for a token instead.
    pub dev_users: Vec<DevUser>,
}

/// Scripts, styles and connections only from this origin, no inline code,
/// no framing: whatever a message body holds, it is only ever shown as text.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

pub fn router(config: ConsoleConfig) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/console/dev-users.json", get(dev_users))
        .route("/console/{*path}", get(asset))
        .with_state(Arc::new(config))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

async fn dev_users(State(config): State<Arc<ConsoleConfig>>) -> Response {
    if config.dev_users.is_empty() {
        return not_found("this server has no dev users: sign in with a token");
    }
    let mut response = Json(&config.dev_users).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return not_found(&format!("no console file {path}"));
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        file.data.into_owned().into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load (a 304 when unchanged), so a new binary's
    // console is never mixed with cached files of the old one.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn not_found(message: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn call(app: &Router, path: &str, etag: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        app.clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serves_the_page_and_its_modules_with_a_strict_policy() {
        let app = router(ConsoleConfig::default());
        let page = call(&app, "/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        let h = page.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html");
        assert!(h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        let body = to_bytes(page.into_body(), 1 << 20).await.unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("/console/js/app.js"));
        assert!(!html.contains("http://") && !html.contains("https://"));

        let again = call(&app, "/", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

        let js = call(&app, "/console/js/app.js", None).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(js.headers()[header::CONTENT_TYPE], "text/javascript");
        let css = call(&app, "/console/app.css", None).await;
        assert_eq!(css.headers()[header::CONTENT_TYPE], "text/css");
        assert_eq!(
            call(&app, "/console/nope.js", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn only_a_dev_server_lists_its_users() {
        let serve = router(ConsoleConfig::default());
        let r = call(&serve, "/console/dev-users.json", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let dev = router(ConsoleConfig {
            dev_users: vec![DevUser {
                id: "defaultUser".into(),
                token: "t".into(),
            }],
        });
        let r = call(&dev, "/console/dev-users.json", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body = to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let users: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(users[0]["id"], "defaultUser");
    }
}
