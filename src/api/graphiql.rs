//! GraphiQL served from the binary: a public administration's page may not make the browser
//! call third parties, so React, ReactDOM and GraphiQL are pinned production builds embedded
//! here (see `assets/graphiql/README.md` for versions, SHA-256 and how to reproduce them) and
//! every response carries a Content-Security-Policy that allows this origin only.

use std::fmt::Write as _;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// Where the assets are served: `GET /graphql/assets/{name}`.
const ASSETS_PATH: &str = "/graphql/assets";

/// The policy of the page and of every asset: nothing from another origin, no inline script,
/// no `eval`, no framing.
///
/// `style-src` keeps `'unsafe-inline'` because GraphiQL's dialogs (Radix UI with
/// `react-remove-scroll`) insert a `<style>` element at run time, without a nonce; scripts
/// stay `'self'` only, so an injected style cannot run code. `data:` in
/// `img-src` and `font-src` is for the icons and fonts GraphiQL's stylesheet embeds inline.
/// `connect-src 'self'` covers `/graphql` and the same-origin WebSocket `/graphql/ws`.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    /// The file name in the URL.
    name: &'static str,
    /// Its media type.
    content_type: &'static str,
    /// Its bytes.
    bytes: &'static [u8],
}

/// The media type of a script.
const JS: &str = "text/javascript; charset=utf-8";
/// The media type of a stylesheet.
const CSS: &str = "text/css; charset=utf-8";

/// The stylesheets, in the order the page links them.
const STYLES: &[Asset] = &[
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        bytes: include_bytes!("assets/graphiql/graphiql.min.css"),
    },
    Asset {
        name: "page.css",
        content_type: CSS,
        bytes: include_bytes!("assets/graphiql/page.css"),
    },
];

/// The scripts, in the order they must run.
const SCRIPTS: &[Asset] = &[
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        bytes: include_bytes!("assets/graphiql/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        bytes: include_bytes!("assets/graphiql/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        bytes: include_bytes!("assets/graphiql/graphiql.min.js"),
    },
    Asset {
        name: "init.js",
        content_type: JS,
        bytes: include_bytes!("assets/graphiql/init.js"),
    },
];

/// The asset called `name`, if any.
fn find(name: &str) -> Option<&'static Asset> {
    STYLES.iter().chain(SCRIPTS).find(|a| a.name == name)
}

/// An asset's URL, with a digest of its content as query so that a new build of the binary
/// is never served from a stale cache (the assets are cached as immutable).
fn url(asset: &Asset) -> String {
    let digest = Sha256::digest(asset.bytes);
    format!(
        "{ASSETS_PATH}/{}?v={}",
        asset.name,
        hex::encode(&digest[..8])
    )
}

/// The page, built once: it references the assets by same-origin paths only.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"it\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>procedo · GraphiQL</title>\n<link rel=\"icon\" href=\"data:,\">\n",
    );
    for style in STYLES {
        let _ = writeln!(html, "<link rel=\"stylesheet\" href=\"{}\">", url(style));
    }
    for script in SCRIPTS {
        let _ = writeln!(html, "<script defer src=\"{}\"></script>", url(script));
    }
    html.push_str(
        "</head>\n<body>\n<div id=\"graphiql\">Caricamento di GraphiQL…</div>\n\
         <noscript>GraphiQL richiede JavaScript.</noscript>\n</body>\n</html>\n",
    );
    html
});

/// The headers every response of this module carries.
fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

/// `GET /graphql`: the GraphiQL page (HTTP endpoint `/graphql`, subscriptions on
/// `/graphql/ws`; a token goes in the Headers editor as `Authorization: Bearer …`).
pub(crate) async fn page() -> Response {
    (
        security_headers(),
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        PAGE.as_str(),
    )
        .into_response()
}

/// `GET /graphql/assets/{name}`: an embedded asset, cached as immutable; 404 for any other
/// name.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = find(&name) else {
        return (
            StatusCode::NOT_FOUND,
            security_headers(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            "risorsa sconosciuta\n",
        )
            .into_response();
    };
    (
        security_headers(),
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        asset.bytes,
    )
        .into_response()
}

/// The asset route, `GET /graphql/assets/{name}`, for any router state.
pub(crate) fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(&format!("{ASSETS_PATH}/{{name}}"), get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_references_every_asset_by_a_same_origin_path() {
        for asset in STYLES.iter().chain(SCRIPTS) {
            let path = format!("\"{ASSETS_PATH}/{}?v=", asset.name);
            assert!(PAGE.contains(&path), "{} not referenced", asset.name);
            assert!(!asset.bytes.is_empty(), "{} is empty", asset.name);
        }
        assert!(!PAGE.contains("<script>"), "no inline script");
        assert!(!PAGE.contains("http"), "no absolute URL");
    }

    #[test]
    fn the_policy_names_no_other_origin() {
        assert!(!CONTENT_SECURITY_POLICY.contains("http"));
        assert!(!CONTENT_SECURITY_POLICY.contains('*'));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-eval"));
        assert!(HeaderValue::from_str(CONTENT_SECURITY_POLICY).is_ok());
    }
}
