//! GraphiQL comes from the server itself: the page and every asset it references are served
//! from this origin under a Content-Security-Policy that names no other origin.

use crate::helpers::spawn_apps;

/// The values of every `src="…"` and `href="…"` attribute in `html`.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            rest = &rest[start + attribute.len()..];
            let end = rest.find('"').expect("closing quote");
            found.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    found
}

/// The `src` of every `<script>` and the `href` of every stylesheet `<link>`, with the
/// content type each must be served with.
fn scripts_and_styles(html: &str) -> Vec<(String, &'static str)> {
    let mut found = Vec::new();
    for tag in html.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or_default();
        let kind = if tag.starts_with("script") {
            Some(("src=\"", "text/javascript"))
        } else if tag.starts_with("link") && tag.contains("rel=\"stylesheet\"") {
            Some(("href=\"", "text/css"))
        } else {
            None
        };
        if let Some((attribute, content_type)) = kind {
            let url = references(tag)
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("no {attribute} in <{tag}>"));
            found.push((url, content_type));
        }
    }
    found
}

fn csp_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-security-policy")
        .expect("a Content-Security-Policy header")
        .to_str()
        .expect("ASCII policy")
        .to_string()
}

fn assert_strict(csp: &str, what: &str) {
    assert!(
        !csp.contains("http:") && !csp.contains("https:"),
        "{what}: the policy names another origin: {csp}"
    );
    assert!(
        !csp.contains('*'),
        "{what}: the policy has a wildcard: {csp}"
    );
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{what}: the policy is not strict: {csp}"
    );
    assert!(
        !csp.contains("unsafe-eval"),
        "{what}: the policy allows eval: {csp}"
    );
}

#[tokio::test]
async fn graphiql_is_served_from_this_origin_under_a_strict_policy() {
    for app in spawn_apps().await {
        let backend = &app.backend;
        let page = app.get("/graphql", None).await;
        assert_eq!(page.status(), 200, "[{backend}]");
        let csp = csp_of(&page);
        assert_strict(&csp, "page");
        let headers = page.headers();
        assert_eq!(headers["x-frame-options"], "DENY", "[{backend}]");
        assert_eq!(headers["referrer-policy"], "no-referrer", "[{backend}]");
        assert!(
            headers["content-type"]
                .to_str()
                .expect("type")
                .starts_with("text/html"),
            "[{backend}]"
        );
        let html = page.text().await.expect("body");
        assert!(html.contains("graphiql"), "[{backend}] GraphiQL page");
        assert!(!html.contains("<script>"), "[{backend}] inline script");

        let lower = html.to_ascii_lowercase();
        for third_party in ["unpkg", "cdn", "jsdelivr"] {
            assert!(
                !lower.contains(third_party),
                "[{backend}] the page mentions {third_party}"
            );
        }
        let references = references(&html);
        assert!(!references.is_empty(), "[{backend}] no reference found");
        for reference in &references {
            let r = reference.to_ascii_lowercase();
            assert!(
                !r.starts_with("http:") && !r.starts_with("https:") && !r.starts_with("//"),
                "[{backend}] external reference {reference}"
            );
            assert!(
                r.starts_with('/') || r.starts_with("data:"),
                "[{backend}] unexpected reference {reference}"
            );
        }

        let assets = scripts_and_styles(&html);
        assert!(
            assets.iter().any(|(_, t)| *t == "text/javascript")
                && assets.iter().any(|(_, t)| *t == "text/css"),
            "[{backend}] scripts and stylesheets expected: {assets:?}"
        );
        for (url, content_type) in assets {
            assert!(
                url.starts_with("/graphql/assets/"),
                "[{backend}] {url} not served from the binary"
            );
            let response = app.get(&url, None).await;
            assert_eq!(response.status(), 200, "[{backend}] {url}");
            let served = response.headers()["content-type"]
                .to_str()
                .expect("type")
                .to_string();
            assert!(
                served.starts_with(content_type),
                "[{backend}] {url} served as {served}"
            );
            assert_strict(&csp_of(&response), &url);
            assert_eq!(
                response.headers()["x-content-type-options"],
                "nosniff",
                "[{backend}] {url}"
            );
            let cache = response.headers()["cache-control"]
                .to_str()
                .expect("cache")
                .to_string();
            assert!(cache.contains("immutable"), "[{backend}] {url}: {cache}");
            let body = response.bytes().await.expect("body");
            assert!(!body.is_empty(), "[{backend}] {url} is empty");
        }

        let unknown = app.get("/graphql/assets/unknown.js", None).await;
        assert_eq!(unknown.status(), 404, "[{backend}]");
        let traversal = app.get("/graphql/assets/..%2Fhttp.rs", None).await;
        assert_eq!(traversal.status(), 404, "[{backend}]");
    }
}
