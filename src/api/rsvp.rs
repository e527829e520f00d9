//! The page a personal link opens: the meeting, the seat, and three answers — partecipo, non
//! partecipo, delego a … — without login. The link is signed and expires at the meeting; a
//! tampered, expired or unknown link gets a plain Italian page, never a stack trace. The
//! answer goes through the same step as `answerConvocation`.

use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use crate::engine::Actor;
use crate::engine::meeting::{self, Answer, Capacity};
use crate::identity::links::{self, LinkError};
use crate::terms::ROME;

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(crate) fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"it\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title></head>\n<body style=\"font-family: sans-serif; line-height: 1.5; max-width: 40em; margin: 2em auto; padding: 0 1em;\">\n<h1 style=\"font-size: 1.3em;\">{t}</h1>\n{body}\n</body>\n</html>\n",
        t = escape(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

fn refused(error: &LinkError) -> Response {
    match error {
        LinkError::Expired => html(
            StatusCode::GONE,
            "Collegamento scaduto",
            "<p>Il collegamento per rispondere alla convocazione è scaduto con la seduta. Per comunicazioni rivolgersi all'Ufficio di Piano.</p>",
        ),
        LinkError::Invalid => html(
            StatusCode::BAD_REQUEST,
            "Collegamento non valido",
            "<p>Il collegamento non è valido o è stato modificato. Usare il collegamento ricevuto nell'email di convocazione, senza alterarlo.</p>",
        ),
    }
}

/// What a link leads to, loaded: the meeting's title, when and where, the seat's name.
struct Target {
    link: links::Link,
    title: String,
    when: String,
    place: String,
    seat: String,
    answered: Option<String>,
}

async fn target(state: &ApiState, token: &str) -> Result<Target, Response> {
    let Some(key) = state.shared.links.as_ref() else {
        return Err(html(
            StatusCode::NOT_FOUND,
            "Risposte via collegamento non attive",
            "<p>Questa installazione non accetta risposte via collegamento: rispondere tramite la piattaforma.</p>",
        ));
    };
    let now = state.shared.service.now().timestamp();
    let link = links::verify(key, token, now).map_err(|e| refused(&e))?;
    let invalid = || refused(&LinkError::Invalid);
    let row = state
        .shared
        .service
        .store()
        .instance(&link.instance_id)
        .await
        .map_err(|_| invalid())?
        .ok_or_else(invalid)?;
    let p = state
        .shared
        .service
        .procedure(&row.definition_id, Some(row.definition_version))
        .await
        .map_err(|_| invalid())?;
    let d = p.meeting.as_ref().ok_or_else(invalid)?;
    let body = meeting::body_of(d, &row.data);
    let seat = body
        .seats
        .iter()
        .find(|s| s.id == link.seat)
        .ok_or_else(invalid)?;
    let text = |name: &str| {
        row.data
            .variables
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let when = row
        .data
        .variables
        .get(d.when.as_str())
        .and_then(|v| crate::engine::value::instant_of(crate::definition::VarType::DateTime, v))
        .map(|t| {
            t.with_timezone(&ROME)
                .format("%d/%m/%Y alle %H:%M")
                .to_string()
        })
        .unwrap_or_default();
    let answered = row
        .data
        .meeting
        .as_ref()
        .and_then(|m| m.rsvps.get(&link.seat))
        .map(|r| match r.answer {
            Answer::Partecipa => "partecipa".to_string(),
            Answer::NonPartecipa => "non partecipa".to_string(),
            Answer::Delega => format!("delega {}", r.delegate.as_deref().unwrap_or_default()),
        });
    Ok(Target {
        title: body.title.clone(),
        when,
        place: d
            .place
            .as_ref()
            .map(|v| text(v.as_str()))
            .unwrap_or_default(),
        seat: seat.name.clone(),
        answered,
        link,
    })
}

/// The page: the meeting and the form.
pub(crate) async fn page(State(state): State<ApiState>, Path(token): Path<String>) -> Response {
    let t = match target(&state, &token).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    let already = t
        .answered
        .as_deref()
        .map(|a| format!("<p>Risposta già registrata: <strong>{}</strong>. Potete cambiarla fino alla seduta.</p>", escape(a)))
        .unwrap_or_default();
    html(
        StatusCode::OK,
        &format!("Convocazione – {}", t.title),
        &format!(
            "<p>Seduta del {} presso {}.</p>\n<p>Risposta per: <strong>{}</strong>.</p>\n{already}\n<form method=\"post\">\n<p><label><input type=\"radio\" name=\"risposta\" value=\"partecipa\" required> Partecipo</label></p>\n<p><label><input type=\"radio\" name=\"risposta\" value=\"non_partecipa\"> Non partecipo</label></p>\n<p><label><input type=\"radio\" name=\"risposta\" value=\"delega\"> Delego a</label> <input type=\"text\" name=\"delegato\" maxlength=\"200\" aria-label=\"Nome del delegato\"> <select name=\"carica\" aria-label=\"Carica del delegato\"><option value=\"delegato\">delegato</option><option value=\"vice_sindaco\">vice sindaco</option><option value=\"assessore\">assessore</option></select></p>\n<p><button type=\"submit\">Invia la risposta</button></p>\n</form>",
            escape(&t.when),
            escape(&t.place),
            escape(&t.seat),
        ),
    )
}

/// The form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct AnswerForm {
    risposta: String,
    #[serde(default)]
    delegato: Option<String>,
    #[serde(default)]
    carica: Option<String>,
}

/// Records the answer.
pub(crate) async fn answer(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    Form(form): Form<AnswerForm>,
) -> Response {
    let t = match target(&state, &token).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    let answer = match form.risposta.as_str() {
        "partecipa" => Answer::Partecipa,
        "non_partecipa" => Answer::NonPartecipa,
        "delega" => Answer::Delega,
        _ => {
            return html(
                StatusCode::BAD_REQUEST,
                "Risposta non valida",
                "<p>Scegliere una delle tre risposte.</p>",
            );
        }
    };
    let capacity = match form.carica.as_deref() {
        Some("vice_sindaco") => Capacity::ViceSindaco,
        Some("assessore") => Capacity::Assessore,
        _ => Capacity::Delegato,
    };
    let actor = Actor {
        id: format!("collegamento:{}", t.link.seat),
        role: "sindaco".into(),
    };
    let payload = serde_json::json!({ "seggio": t.link.seat, "risposta": answer, "delegato": form.delegato, "via": "collegamento personale" });
    let seat = t.link.seat.clone();
    let delegate = form.delegato.clone();
    let result = state
        .shared
        .service
        .record_step(
            &t.link.instance_id,
            &actor,
            &payload,
            None,
            |p, row, now| {
                meeting::rsvp(
                    p,
                    &row.snapshot(),
                    &seat,
                    &actor.id,
                    answer,
                    delegate.as_deref(),
                    Some(capacity),
                    now,
                )
            },
        )
        .await;
    match result {
        Ok(_) => html(
            StatusCode::OK,
            "Risposta registrata",
            &format!(
                "<p>La risposta per <strong>{}</strong> alla convocazione di {} è registrata.</p>",
                escape(&t.seat),
                escape(&t.title)
            ),
        ),
        Err(e) => html(
            StatusCode::CONFLICT,
            "Risposta non registrata",
            &format!("<p>{}</p>", escape(&e.to_string())),
        ),
    }
}
