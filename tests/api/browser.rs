//! In a real headless browser (Debian's chromium, driven over the DevTools protocol): a
//! mayor opens the personal link of a convocation, answers on the page — delegating an
//! assessore — and the answer reaches the meeting; a tampered link shows a plain page; the
//! verbale drafted from a register opens as a document.

use std::process::{Child, Command, Stdio};
use std::time::Duration as StdDuration;

use async_graphql::futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common;
use crate::helpers::{LINK_KEY, spawn_apps};
use crate::meetings::convened;
use procedo::clock::Clock as _;

/// A headless chromium with a DevTools endpoint; killed when dropped.
struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(String::from)
}

/// axe-core's script (installed by scripts/test with npm), or `None` where the tools are not
/// required and it is missing.
fn axe_source() -> Option<String> {
    let path = std::env::var("PROCEDO_AXE").map_or_else(
        |_| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/test-tools/node_modules/axe-core/axe.min.js")
        },
        std::path::PathBuf::from,
    );
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(e) => {
            assert!(
                std::env::var("PROCEDO_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "axe-core is required at {} (scripts/test installs it): {e}",
                path.display()
            );
            eprintln!("axe-core not installed: the accessibility check is skipped");
            None
        }
    }
}

/// What axe-core finds against WCAG 2.1 A and AA in the page at `url` once it shows `ready`:
/// (rule, impact, nodes). `None` when axe-core is not installed (and not required).
async fn accessibility(
    page: &mut Page,
    url: &str,
    ready: &str,
) -> Option<Vec<(String, Option<String>, usize)>> {
    let axe = axe_source()?;
    // The page's CSP admits no script: the check is injected through DevTools.
    page.call("Page.setBypassCSP", json!({ "enabled": true }))
        .await;
    page.navigate(url).await;
    page.text_with(ready).await;
    page.eval(&axe).await;
    let found = page
        .call(
            "Runtime.evaluate",
            json!({
                "expression": "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}).then(r => JSON.stringify(r.violations.map(v => [v.id, v.impact, v.nodes.length])))",
                "awaitPromise": true,
                "returnByValue": true
            }),
        )
        .await;
    Some(
        serde_json::from_str(found["result"]["value"].as_str().unwrap_or("null"))
            .unwrap_or_else(|e| panic!("axe-core did not run: {e}: {found}")),
    )
}

/// The markup errors on a page (`None` when the checkers are not installed and not required):
/// HTML Tidy's errors (its warnings are printed: tidy predates some ARIA and SVG attributes)
/// and html-validate's, the HTML Living Standard's content models and attributes (preset
/// `html-validate:standard`, from the npm registry).
fn html_errors(html: &str) -> Option<String> {
    let required = std::env::var("PROCEDO_REQUIRE_TOOLS").as_deref() == Ok("1");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("page.html");
    std::fs::write(&file, html).expect("write");
    let output = match Command::new("tidy").args(["-q", "-e"]).arg(&file).output() {
        Ok(output) => output,
        Err(e) => {
            assert!(
                !required,
                "HTML Tidy is required (scripts/test installs Debian's tidy): {e}"
            );
            return None;
        }
    };
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    if !report.is_empty() {
        eprintln!("tidy: {report}");
    }
    // 0: clean, 1: warnings, 2: errors.
    let mut errors = if output.status.code() == Some(2) {
        report
    } else {
        String::new()
    };
    let validator = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-tools/node_modules/html-validate/bin/html-validate.mjs");
    if !validator.exists() {
        assert!(
            !required,
            "html-validate is required (scripts/test installs it from npm)"
        );
        return Some(errors);
    }
    let config = dir.path().join("htmlvalidate.json");
    std::fs::write(&config, r#"{"extends":["html-validate:standard"]}"#).expect("config");
    let output = Command::new("node")
        .arg(&validator)
        .arg("--config")
        .arg(&config)
        .arg(&file)
        .output()
        .expect("node runs html-validate");
    if !output.status.success() {
        errors.push_str(&String::from_utf8_lossy(&output.stdout));
        errors.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    Some(errors)
}

/// A public page as it must be: 200, a Content-Security-Policy that allows nothing by
/// default, no script, no markup error. Returns its body.
async fn strict_page(response: reqwest::Response, backend: &str) -> String {
    assert_eq!(response.status(), 200, "[{backend}]");
    let csp = response
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "[{backend}] {csp}");
    let body = response.text().await.expect("body");
    assert!(!body.contains("<script"), "[{backend}]");
    if let Some(errors) = html_errors(&body) {
        assert!(errors.is_empty(), "[{backend}] HTML errors: {errors}");
    }
    body
}

/// A serious or critical finding.
fn serious(found: &[(String, Option<String>, usize)]) -> bool {
    found
        .iter()
        .any(|(_, impact, _)| matches!(impact.as_deref(), Some("serious" | "critical")))
}

async fn launch() -> Browser {
    let binary =
        chromium().expect("chromium is required (scripts/test installs Debian's chromium)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let profile = tempfile::tempdir().expect("profile dir");
    let child = Command::new(binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            &format!("--remote-debugging-port={port}"),
            &format!("--user-data-dir={}", profile.path().display()),
            "about:blank",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let browser = Browser {
        child,
        port,
        _profile: profile,
    };
    // Wait for the DevTools endpoint.
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("http://127.0.0.1:{port}/json/version"))
            .send()
            .await
            .is_ok()
        {
            return browser;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    panic!("chromium's DevTools endpoint did not answer");
}

/// One page, driven over its DevTools WebSocket.
struct Page {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn open(browser: &Browser) -> Page {
        let http = reqwest::Client::new();
        let target: Value = http
            .put(format!(
                "http://127.0.0.1:{}/json/new?about:blank",
                browser.port
            ))
            .send()
            .await
            .expect("new tab")
            .json()
            .await
            .expect("target");
        let ws = target["webSocketDebuggerUrl"]
            .as_str()
            .expect("debugger url")
            .to_string();
        let (socket, _) = tokio_tungstenite::connect_async(ws)
            .await
            .expect("devtools");
        Page { socket, next_id: 1 }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.socket
            .send(Message::Text(
                json!({ "id": id, "method": method, "params": params })
                    .to_string()
                    .into(),
            ))
            .await
            .expect("send");
        loop {
            let message = tokio::time::timeout(StdDuration::from_secs(20), self.socket.next())
                .await
                .expect("an answer from chromium")
                .expect("open socket")
                .expect("message");
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).expect("json");
                if value["id"] == id {
                    return value["result"].clone();
                }
            }
        }
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    async fn eval(&mut self, expression: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        )
        .await["result"]["value"]
            .clone()
    }

    /// The page's visible text once it contains `needle` (waits up to 10 s).
    async fn text_with(&mut self, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            last = self
                // The whole page: a page still being parsed shows only its beginning.
                .eval("document.readyState === 'complete' && document.body ? document.body.innerText : ''")
                .await
                .as_str()
                .unwrap_or_default()
                .to_string();
            if last.contains(needle) {
                return last;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        panic!("the page never showed «{needle}»: {last}");
    }

    /// Presses Tab `times` times as a keyboard user does; after each press, the focused
    /// element's text (or href) and its computed outline.
    async fn tab_through(&mut self, times: usize) -> Vec<(String, String)> {
        let mut seen = Vec::with_capacity(times);
        for _ in 0..times {
            for kind in ["keyDown", "keyUp"] {
                self.call(
                    "Input.dispatchKeyEvent",
                    json!({ "type": kind, "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9 }),
                )
                .await;
            }
            let focused = self
                .eval("(() => { const e = document.activeElement; const s = getComputedStyle(e); return [e.innerText || e.getAttribute('href') || e.tagName, s.outlineStyle + ' ' + s.outlineWidth]; })()")
                .await;
            seen.push((
                focused[0].as_str().unwrap_or_default().to_owned(),
                focused[1].as_str().unwrap_or_default().to_owned(),
            ));
        }
        seen
    }
}

#[tokio::test]
async fn a_mayor_answers_the_convocation_in_a_real_browser_and_the_verbale_opens_as_a_document() {
    let browser = launch().await;
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let id = convened(&app).await;
        let until = common::at("2026-12-15T17:00:00+01:00").timestamp();
        let token = procedo::identity::links::sign(LINK_KEY, &id, "comune-castelverde", until);
        let mut page = Page::open(&browser).await;
        page.navigate(&format!("{}/risposta/{token}", app.address))
            .await;
        let text = page.text_with("Comune di Castelverde").await;
        assert!(text.contains("15/12/2026 alle 17:00"), "[{backend}] {text}");

        // Answer as a person would: choose "Delego a", type the name, pick the capacity, send.
        page.eval(
            "document.querySelector('input[value=delega]').click();\
             document.querySelector('input[name=delegato]').value = 'Luisa Conti';\
             document.querySelector('select[name=carica]').value = 'assessore';\
             document.querySelector('button[type=submit]').click(); true",
        )
        .await;
        let text = page.text_with("Risposta registrata").await;
        assert!(text.contains("Comune di Castelverde"), "[{backend}] {text}");
        let seen = app
            .ok(
                &app.tokens.ufficio,
                "query($id: ID!) { instance(id: $id) { meeting { answers { seat answer delegate capacity } } } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(
            seen["instance"]["meeting"]["answers"],
            json!([{ "seat": "comune-castelverde", "answer": "DELEGA", "delegate": "Luisa Conti", "capacity": "ASSESSORE" }]),
            "[{backend}]"
        );

        // A tampered link: a plain page, not a stack trace.
        let (body, mac) = token.split_once('.').expect("token");
        let tampered = format!("{body}.{}", mac.replace('a', "b").replace('1', "2"));
        page.navigate(&format!("{}/risposta/{tampered}", app.address))
            .await;
        let text = page.text_with("Collegamento non valido").await;
        assert!(!text.contains("panicked"), "[{backend}] {text}");
    }

    // The verbale drafted from a register opens as a document, with what the register says.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("verbale.html");
    let context = json!({
        "ambito": { "nome": "Ambito di Borgo Fiorito" },
        "protocollo": null,
        "verbale": {
            "organo": "Assemblea dei Sindaci", "giorno": "15/12/2026", "luogo": "Sala consiliare",
            "ora_convocazione": "17.00", "ora_apertura": "17.10", "ora_chiusura": "18.40",
            "convocazione": null, "presidente": "Anna Rossi", "verbalizzante": null,
            "presenti": [{ "seggio": "Comune di Borgo Fiorito", "nome": "Anna Rossi", "carica": "Sindaco" },
                         { "seggio": "Comune di Castelverde", "nome": "Luisa Conti", "carica": null }],
            "assenti": [], "senza_voto": [{ "nome": "Paolo Galli", "carica": null, "nota": "responsabile dell'Ufficio di Piano" }],
            "punti": [{ "titolo": "Piano di Zona 2027", "discussione": null, "esito": "approvato", "decisione": null,
                        "votazione": { "favorevoli": 2, "contrari": 0, "astenuti": 0 } }],
            "approvato_in_seduta": true,
            "firme": [{ "ruolo": "Il Presidente", "nome": "Anna Rossi" }],
        },
    });
    let html = procedo::notify::Templates::builtin()
        .expect("templates")
        .render("verbale_seduta", &context)
        .expect("verbale")
        .html;
    std::fs::write(&file, html).expect("file");
    let mut page = Page::open(&browser).await;
    page.navigate(&format!("file://{}", file.display())).await;
    let text = page.text_with("Verbale della seduta").await;
    for line in [
        "Luisa Conti",
        "non indicata",
        "Partecipano senza diritto di voto",
        "Votazione: favorevoli 2, contrari 0, astenuti 0.",
        "Letto, approvato e sottoscritto.",
    ] {
        assert!(text.contains(line), "missing «{line}»: {text}");
    }
    assert!(!text.contains("Segretario"), "{text}");
}

/// The report of a procedure, as staff open it in a browser: the current state marked in the
/// diagram and in the list, the deadline with its trace, the timeline; keyboard focus reaches
/// its links; an ETS gets nothing; the page loads nothing from elsewhere.
#[tokio::test]
async fn staff_read_the_report_of_a_procedure_in_a_real_browser() {
    let browser = launch().await;
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let id = convened(&app).await;
        let http = reqwest::Client::new();
        let url = format!("{}/report/{id}", app.address);
        // Not for an ETS, nor without a token.
        let refused = http
            .get(&url)
            .bearer_auth(&app.tokens.ets_a)
            .send()
            .await
            .expect("request");
        assert_eq!(refused.status(), 404, "[{backend}]");
        let anonymous = http.get(&url).send().await.expect("request");
        assert_eq!(anonymous.status(), 401, "[{backend}]");
        let ok = http
            .get(&url)
            .bearer_auth(&app.tokens.ufficio)
            .send()
            .await
            .expect("request");
        let csp = ok
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(csp.starts_with("default-src 'none'"), "[{backend}] {csp}");
        let body = ok.text().await.expect("body");
        if let Some(errors) = html_errors(&body) {
            assert!(errors.is_empty(), "[{backend}] HTML errors: {errors}");
        }
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("<script"),
            "[{backend}] nothing from elsewhere"
        );

        let mut page = Page::open(&browser).await;
        page.call("Network.enable", json!({})).await;
        page.call(
            "Network.setExtraHTTPHeaders",
            json!({ "headers": { "Authorization": format!("Bearer {}", app.tokens.ufficio) } }),
        )
        .await;
        page.navigate(&url).await;
        let text = page.text_with("Stato attuale").await;
        assert!(
            text.contains("Scadenze e loro calcolo"),
            "[{backend}] {text}"
        );
        assert!(text.contains("Cronologia"), "[{backend}] {text}");
        let current = page
            .eval("document.querySelector('[aria-current=step]').closest('li').innerText")
            .await;
        let svg_current = page
            .eval("Array.from(document.querySelectorAll('svg rect')).filter(r => r.getAttribute('fill') === '#0b4f2e').length")
            .await;
        assert_eq!(
            svg_current,
            json!(1),
            "[{backend}] one state filled in the diagram"
        );
        let title = page
            .eval("document.querySelector('svg title').textContent")
            .await;
        assert!(
            current.as_str().is_some_and(|c| title
                .as_str()
                .is_some_and(|t| t.contains(c.split(" (stato attuale)").next().unwrap_or("?")))),
            "[{backend}] the list and the diagram mark the same state: {current} / {title}"
        );
        let trace = page
            .eval("document.querySelector('ol.trace') ? document.querySelector('ol.trace').innerText : ''")
            .await;
        assert!(
            trace
                .as_str()
                .is_some_and(|t| t.contains("giorni") || t.contains("dies a quo")),
            "[{backend}] a deadline with its trace: {trace}"
        );
        // WCAG 2.1 AA by axe-core, run inside the page: no serious or critical finding.
        if let Some(found) = accessibility(&mut page, &url, "Stato attuale").await {
            eprintln!("[{backend}] report, axe-core findings (id, impact, nodes): {found:?}");
            assert!(!serious(&found), "[{backend}] accessibility: {found:?}");
        }
        // Every text is dark on light: contrast above 4.5:1 for body text (WCAG 1.4.3).
        let colours = page
            .eval("[getComputedStyle(document.body).color, getComputedStyle(document.body).backgroundColor]")
            .await;
        assert_eq!(
            colours,
            json!(["rgb(26, 26, 26)", "rgb(255, 255, 255)"]),
            "[{backend}]"
        );
    }
}

/// The albo online: the published avviso with its window (first day counted), as a page a
/// citizen opens (checked by axe-core), as JSON and as an Atom feed read by an XML parser;
/// nothing private on it; the act leaves the albo the day after its window.
#[tokio::test]
async fn the_albo_shows_what_is_in_publication_and_nothing_private() {
    let browser = launch().await;
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let avviso = app.published_avviso().await;
        crate::albo::run_protocollo(&app).await;
        app.clock.set(common::at("2026-12-10T10:00:00+01:00"));
        let http = reqwest::Client::new();
        let page = http
            .get(format!("{}/albo", app.address))
            .send()
            .await
            .expect("albo");
        strict_page(page, &backend).await;
        let json: Value = http
            .get(format!("{}/albo.json", app.address))
            .send()
            .await
            .expect("json")
            .json()
            .await
            .expect("JSON");
        let act = json
            .as_array()
            .and_then(|acts| acts.iter().find(|a| a["id"] == format!("{avviso}:avviso")))
            .unwrap_or_else(|| panic!("[{backend}] {json}"));
        assert_eq!(
            act["from"], "2026-11-27",
            "[{backend}] the first day counts"
        );
        assert_eq!(act["until"], "2026-12-28", "[{backend}] until the deadline");
        // Only public names: no participant, no RUP, no private variable.
        let text = json.to_string();
        for private in ["atto_criteri", "rup", "participants", "referente"] {
            assert!(
                !text.contains(private),
                "[{backend}] «{private}» on the albo: {text}"
            );
        }
        let atom = http
            .get(format!("{}/albo.atom", app.address))
            .send()
            .await
            .expect("atom")
            .text()
            .await
            .expect("text");
        let doc = roxmltree::Document::parse(&atom).expect("Atom is XML");
        let ids: Vec<&str> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "entry")
            .filter_map(|e| e.children().find(|c| c.tag_name().name() == "id"))
            .filter_map(|n| n.text())
            .collect();
        assert!(
            ids.contains(&format!("urn:procedo:albo:{avviso}:avviso").as_str()),
            "[{backend}] {ids:?}"
        );

        let mut tab = Page::open(&browser).await;
        tab.navigate(&format!("{}/albo", app.address)).await;
        let shown = tab.text_with("In pubblicazione dal").await;
        assert!(
            shown.contains("dal 27/11/2026 al 28/12/2026"),
            "[{backend}] {shown}"
        );
        if let Some(found) = accessibility(
            &mut tab,
            &format!("{}/albo", app.address),
            "In pubblicazione dal",
        )
        .await
        {
            eprintln!("[{backend}] albo, axe-core findings (id, impact, nodes): {found:?}");
            assert!(!serious(&found), "[{backend}] accessibility: {found:?}");
        }
        // The act's number and documents are shown, and a keyboard user reaches every link —
        // the formats, then each document — each with a visible focus outline.
        let shown = tab.text_with("Protocollo n.").await;
        assert!(shown.contains("SHA-256"), "[{backend}] {shown}");
        tab.navigate(&format!("{}/albo", app.address)).await;
        tab.text_with("In pubblicazione dal").await;
        let links = tab
            .eval("Array.from(document.querySelectorAll('a')).map(a => a.innerText)")
            .await;
        let links: Vec<String> = links
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            links.iter().any(|l| l == "avviso_pubblico.pdf"),
            "[{backend}] {links:?}"
        );
        let focused = tab.tab_through(links.len()).await;
        let reached: Vec<&str> = focused.iter().map(|(text, _)| text.as_str()).collect();
        assert_eq!(
            reached,
            links.iter().map(String::as_str).collect::<Vec<_>>(),
            "[{backend}] every link, in order"
        );
        for (text, outline) in &focused {
            assert_eq!(outline, "solid 3px", "[{backend}] visible focus on {text}");
        }
        // The checks themselves find what they must: an element HTML does not have, and a
        // content model broken (a list item outside a list, a block inside a paragraph)…
        for broken in [
            "<!DOCTYPE html><html lang=\"it\"><head><title>t</title></head><body><pippo>x</pippo></body></html>",
            "<!DOCTYPE html><html lang=\"it\"><head><title>t</title></head><body><main><li>x</li><p><ul><li>y</li></ul></p></main></body></html>",
        ] {
            if let Some(errors) = html_errors(broken) {
                assert!(!errors.is_empty(), "[{backend}] the checkers see: {broken}");
            }
        }
        // …and grey on white, refused by axe-core.
        if let Some(found) = accessibility(
            &mut tab,
            "data:text/html,<html lang='it'><head><title>t</title></head><body><main><p style='color:%23bbbbbb;background:%23ffffff'>testo poco leggibile</p></main></body></html>",
            "testo poco",
        )
        .await
        {
            assert!(
                found.iter().any(|(id, ..)| id == "color-contrast") && serious(&found),
                "[{backend}] axe-core sees a contrast failure: {found:?}"
            );
        }

        // The day after the deadline, the avviso is no longer at the albo.
        app.clock.set(common::at("2026-12-29T09:00:00+01:00"));
        let after: Value = http
            .get(format!("{}/albo.json", app.address))
            .send()
            .await
            .expect("json")
            .json()
            .await
            .expect("JSON");
        assert!(
            !after.to_string().contains(&format!("{avviso}:avviso")),
            "[{backend}] no public archive of expired acts: {after}"
        );
        // Amministrazione trasparente keeps it, for five years from 1 January 2027.
        let kept: Value = http
            .get(format!("{}/trasparente.json", app.address))
            .send()
            .await
            .expect("json")
            .json()
            .await
            .expect("JSON");
        assert!(
            kept.to_string().contains(&format!("{avviso}:avviso")),
            "[{backend}] in Amministrazione trasparente: {kept}"
        );
        let page = http
            .get(format!("{}/trasparente", app.address))
            .send()
            .await
            .expect("trasparente")
            .text()
            .await
            .expect("text");
        if let Some(errors) = html_errors(&page) {
            assert!(errors.is_empty(), "[{backend}] HTML errors: {errors}");
        }
        if let Some(found) = accessibility(
            &mut tab,
            &format!("{}/trasparente", app.address),
            "in questa sezione fino al 31/12/2031",
        )
        .await
        {
            assert!(!serious(&found), "[{backend}] accessibility: {found:?}");
        }
    }
}

/// A mayor opens the personal calendar link in a real browser: the session of the body the
/// comune sits in, with the same UID as the `.ics` feed (and the invites), the subscription
/// links reachable by keyboard, no serious accessibility finding, valid markup; once revoked
/// the page is gone like the feed.
#[tokio::test]
async fn a_mayor_opens_the_calendar_link_and_sees_the_events_of_the_feed() {
    let browser = launch().await;
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let id = convened(&app).await;
        let issued = procedo::admin::create_calendar_feed(
            app.state.service().store(),
            &procedo::admin::Admin::command_line(),
            "sindaco.comune-borgo-fiorito",
            app.clock.now(),
        )
        .await
        .expect("feed");
        let page_path = format!("/calendario/{}", issued.secret);
        let ics = app
            .get(&format!("{page_path}.ics"), None)
            .await
            .text()
            .await
            .expect("ics");
        let uids: Vec<&str> = ics
            .lines()
            .filter_map(|l| l.trim_end().strip_prefix("UID:"))
            .collect();
        let uid = uids
            .iter()
            .find(|u| u.starts_with(&id))
            .unwrap_or_else(|| panic!("[{backend}] the meeting in the feed: {ics}"));
        let response = app.get(&page_path, None).await;
        strict_page(response, &backend).await;

        let mut tab = Page::open(&browser).await;
        let url = format!("{}{page_path}", app.address);
        tab.navigate(&url).await;
        let shown = tab.text_with("Assemblea dei Sindaci").await;
        assert!(
            shown.contains("15/12/2026 dalle 17:00 alle 19:00")
                && shown.contains("Sala consiliare di Borgo Fiorito")
                && shown.contains("Piano di Zona 2027"),
            "[{backend}] {shown}"
        );
        // Every event of the feed is on the page, by its UID.
        for uid in &uids {
            assert!(
                shown.contains(&format!("UID {uid}")),
                "[{backend}] {uid}: {shown}"
            );
        }
        assert!(shown.contains(uid), "[{backend}]");
        if let Some(found) = accessibility(&mut tab, &url, "Assemblea dei Sindaci").await {
            eprintln!("[{backend}] calendar, axe-core findings (id, impact, nodes): {found:?}");
            assert!(!serious(&found), "[{backend}] accessibility: {found:?}");
        }
        tab.navigate(&url).await;
        tab.text_with("Assemblea dei Sindaci").await;
        let focused = tab.tab_through(1).await;
        assert_eq!(
            focused[0].0, "abbonati al calendario (ICS)",
            "[{backend}] the subscription is the first stop"
        );
        assert_eq!(focused[0].1, "solid 3px", "[{backend}] visible focus");
        let href = tab
            .eval("document.activeElement.getAttribute('href')")
            .await;
        assert_eq!(href, json!(format!("{page_path}.ics")), "[{backend}]");

        procedo::admin::revoke_calendar_feed(
            app.state.service().store(),
            &procedo::admin::Admin::command_line(),
            &issued.feed.id,
            app.clock.now(),
        )
        .await
        .expect("revoked");
        for path in [page_path.clone(), format!("{page_path}.ics")] {
            assert_eq!(
                app.get(&path, None).await.status(),
                404,
                "[{backend}] {path}"
            );
        }
    }
}
