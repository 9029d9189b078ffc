//! The self-hosted GraphiQL playground: the page and its bundle (built from `playground/` with npm
//! and committed in `playground/dist/`), embedded in the binary and served with a strict
//! Content-Security-Policy: nothing is loaded from another host.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The page.
const INDEX: &str = include_str!("../playground/index.html");
/// GraphiQL and the playground's set-up, bundled.
const SCRIPT: &str = include_str!("../playground/dist/playground.js");
/// GraphiQL's styles, bundled.
const STYLE: &str = include_str!("../playground/dist/playground.css");

/// Scripts and styles from this server only; calls to this server only. Inline styles are allowed
/// because the editor positions its parts with `style` attributes.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /playground`: GraphiQL, to explore the API in a browser.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

/// `GET /playground/{asset}`: the bundled script and styles.
pub async fn asset(Path(asset): Path<String>) -> Response {
    let (content_type, body) = match asset.as_str() {
        "playground.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "playground.css" => ("text/css; charset=utf-8", STYLE),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
