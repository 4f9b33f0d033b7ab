//! HTTP API, dashboard (server-rendered HTML) and `/metrics`.
//!
//! Reads go to SQLite through read-only connections; anything that changes state needs the
//! token (`Authorization: Bearer TOKEN`, or the `token` field of the dashboard's forms) and is
//! carried out by the store thread.

// Handlers return axum's `Response` as their error, as axum does.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use detect::evidence::Evidence;
use serde::Deserialize;
use tracing::info;

use super::store::{self, Action, Cmd};
use super::Shared;

type S = State<Arc<Shared>>;

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/incidents/{id}", get(incident_page))
        .route("/incidents/{id}/action", post(form_action))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/incidents", get(api_list))
        .route("/api/incidents/{id}", get(api_get))
        .route("/api/incidents/{id}/{action}", post(api_act))
        .route("/api/containment", get(api_containment))
        .route("/api/contain", post(api_contain))
        .with_state(shared)
}

/// Bind and serve.
pub async fn listen(
    addr: &str,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on HTTP address {addr}"))?;
    info!(addr = %l.local_addr()?, "HTTP API and dashboard listening");
    let app = router(shared);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(l, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
    }))
}

fn err(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({"error": msg.into()}))).into_response()
}

async fn read<T: Send + 'static>(
    sh: &Shared,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
) -> Result<T, Response> {
    let p = sh.store_path.clone();
    tokio::task::spawn_blocking(move || {
        let c = store::reader(&p)?;
        f(&c)
    })
    .await
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))
}

fn token_ok(sh: &Shared, given: Option<&str>) -> Result<(), Response> {
    let live = sh.live.load();
    if live.token.is_empty() {
        return Err(err(
            StatusCode::FORBIDDEN,
            "no token configured ([serve] token): the API is read-only",
        ));
    }
    match given {
        Some(t) if constant_eq(t.as_bytes(), live.token.as_bytes()) => Ok(()),
        _ => Err(err(StatusCode::UNAUTHORIZED, "a valid token is required")),
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(h: &HeaderMap) -> Option<&str> {
    h.get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn health(State(sh): S) -> Response {
    let db = read(&sh, |c| {
        c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    })
    .await
    .is_ok();
    let body = serde_json::json!({
        "status": if db { "ok" } else { "degraded" },
        "store": db,
        "uptime_seconds": sh.started.elapsed().as_secs(),
        "contained": sh.contained.load().len(),
        "mode": sh.live.load().mode,
        "engine_queue": sh.metrics.queue_depth.load(std::sync::atomic::Ordering::Relaxed),
    });
    let code = if db {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(sh): S) -> Response {
    let body = sh.metrics.render(
        sh.contained.load().len(),
        sh.started.elapsed().as_secs_f64(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[derive(Debug, Deserialize, Default)]
struct ListQ {
    state: Option<String>,
    q: Option<String>,
    limit: Option<i64>,
}

fn clean(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
}

async fn api_list(State(sh): S, Query(q): Query<ListQ>) -> Response {
    let (state, text, limit) = (
        clean(&q.state),
        clean(&q.q),
        q.limit.unwrap_or(100).clamp(1, 1000),
    );
    match read(&sh, move |c| {
        store::list_incidents(c, state.as_deref(), text.as_deref(), limit)
    })
    .await
    {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn api_get(State(sh): S, Path(id): Path<i64>) -> Response {
    match read(&sh, move |c| store::get_incident(c, id)).await {
        Ok(Some((inc, alerts, tl))) => {
            Json(serde_json::json!({"incident": inc, "alerts": alerts, "timeline": tl}))
                .into_response()
        }
        Ok(None) => err(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Err(r) => r,
    }
}

async fn api_containment(State(sh): S) -> Response {
    let set = sh.contained.load();
    let mut v: Vec<_> = set.iter().cloned().collect();
    v.sort_by(|a, b| a.since.cmp(&b.since).then(a.id.cmp(&b.id)));
    Json(v).into_response()
}

#[derive(Debug, Deserialize, Default)]
struct ActBody {
    by: Option<String>,
    note: Option<String>,
    minutes: Option<i64>,
}

async fn send_act(
    sh: &Shared,
    incident: i64,
    action: Action,
    body: ActBody,
) -> Result<i64, Response> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cmd = Cmd::Act {
        incident,
        action,
        secs: body.minutes.filter(|m| *m > 0).map(|m| m * 60),
        by: body
            .by
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| "api".into()),
        note: body.note.unwrap_or_default(),
        reply: tx,
    };
    let tx = sh.store_tx.clone();
    tokio::task::spawn_blocking(move || tx.send(cmd))
        .await
        .ok()
        .and_then(|r| r.ok())
        .ok_or_else(|| err(StatusCode::SERVICE_UNAVAILABLE, "store unavailable"))?;
    match rx.await {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(e)) => Err(err(StatusCode::CONFLICT, e)),
        Err(_) => Err(err(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")),
    }
}

async fn api_act(
    State(sh): S,
    Path((id, action)): Path<(i64, String)>,
    headers: HeaderMap,
    body: Option<Json<ActBody>>,
) -> Response {
    if let Err(r) = token_ok(&sh, bearer(&headers)) {
        return r;
    }
    let action = match action.as_str() {
        "contain" => Action::Contain,
        "release" => Action::Release,
        "dismiss" => Action::Dismiss,
        _ => return err(StatusCode::NOT_FOUND, "actions: contain, release, dismiss"),
    };
    match send_act(&sh, id, action, body.map(|b| b.0).unwrap_or_default()).await {
        Ok(id) => Json(serde_json::json!({"ok": true, "incident": id})).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
struct ContainBody {
    kind: String,
    id: String,
    minutes: Option<i64>,
    by: Option<String>,
    note: Option<String>,
}

async fn api_contain(State(sh): S, headers: HeaderMap, Json(b): Json<ContainBody>) -> Response {
    if let Err(r) = token_ok(&sh, bearer(&headers)) {
        return r;
    }
    let Some(kind) = store::parse_kind(&b.kind).filter(|k| *k != detect::EntityKind::Campaign)
    else {
        return err(StatusCode::BAD_REQUEST, "kind: account, client or sender");
    };
    if b.id.trim().is_empty() || b.id.len() > 512 {
        return err(StatusCode::BAD_REQUEST, "id: 1 to 512 characters");
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cmd = Cmd::ContainEntity {
        kind,
        id: b.id.trim().to_string(),
        secs: b.minutes.filter(|m| *m > 0).map(|m| m * 60),
        by: b.by.unwrap_or_else(|| "api".into()),
        note: b.note.unwrap_or_default(),
        reply: tx,
    };
    let stx = sh.store_tx.clone();
    if tokio::task::spawn_blocking(move || stx.send(cmd))
        .await
        .ok()
        .and_then(|r| r.ok())
        .is_none()
    {
        return err(StatusCode::SERVICE_UNAVAILABLE, "store unavailable");
    }
    match rx.await {
        Ok(Ok(id)) => Json(serde_json::json!({"ok": true, "incident": id})).into_response(),
        Ok(Err(e)) => err(StatusCode::CONFLICT, e),
        Err(_) => err(StatusCode::SERVICE_UNAVAILABLE, "store unavailable"),
    }
}

// ---- HTML ----

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn url_enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f4f4f4}.state{font-weight:bold;padding:.1em .4em;border-radius:.3em}.open{background:#fe9}.contained{background:#f99}.released{background:#9e9}.dismissed{background:#ddd}pre{background:#f8f8f8;padding:.5em;overflow:auto;max-height:30em}form.inline{display:inline-block;margin-right:1em}nav a{margin-right:1em}.msg{padding:.5em;background:#eef}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - smtpscope</title><style>{STYLE}</style></head><body><nav><a href=\"/\">Incidents</a><a href=\"/api/containment\">Containment (JSON)</a><a href=\"/metrics\">Metrics</a><a href=\"/health\">Health</a></nav>{body}</body></html>",
        esc(title)
    ))
}

fn when(secs: i64) -> String {
    maillog::Ts::from_secs(secs).display_utc()
}

async fn dashboard(State(sh): S, Query(q): Query<ListQ>) -> Response {
    let (state, text) = (clean(&q.state), clean(&q.q));
    let (s2, t2) = (state.clone(), text.clone());
    let data = read(&sh, move |c| {
        Ok((
            store::list_incidents(
                c,
                s2.as_deref(),
                t2.as_deref(),
                q.limit.unwrap_or(200).clamp(1, 1000),
            )?,
            store::counts(c)?,
        ))
    })
    .await;
    let (list, counts) = match data {
        Ok(d) => d,
        Err(r) => return r,
    };
    let live = sh.live.load();
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>smtpscope incidents</h1><p>Mode: <b id=\"mode\">{:?}</b> &middot; contained now: <b id=\"contained\">{}</b> &middot; ",
        live.mode,
        sh.contained.load().len()
    );
    for (s, n) in &counts {
        let _ = write!(b, "<a href=\"/?state={0}\">{0}</a>: {n} ", esc(s));
    }
    let _ = write!(
        b,
        "</p><form method=\"get\" action=\"/\"><input name=\"q\" placeholder=\"account, IP, detector\" value=\"{}\"> <select name=\"state\"><option value=\"\">any state</option>",
        esc(text.as_deref().unwrap_or(""))
    );
    for s in ["open", "contained", "released", "dismissed"] {
        let sel = if state.as_deref() == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(b, "<option{sel}>{s}</option>");
    }
    b.push_str("</select> <button type=\"submit\">Search</button></form>");
    b.push_str("<table id=\"incidents\"><thead><tr><th>#</th><th>State</th><th>Entity</th><th>Detector</th><th>Score</th><th>Alerts</th><th>Last event</th><th>Summary</th></tr></thead><tbody>");
    for i in &list {
        let _ = write!(
            b,
            "<tr><td><a href=\"/incidents/{0}\">{0}</a></td><td><span class=\"state {1}\">{1}</span></td><td>{2} <a href=\"/incidents/{0}\">{3}</a></td><td>{4}</td><td>{5:.2}</td><td>{6}</td><td>{7}</td><td>{8}</td></tr>",
            i.id,
            esc(&i.state),
            esc(&i.entity_kind),
            esc(&i.entity_id),
            esc(&i.detector),
            i.score,
            i.alerts,
            esc(&i.last_ts),
            esc(&i.summary)
        );
    }
    if list.is_empty() {
        b.push_str("<tr><td colspan=\"8\">No incidents.</td></tr>");
    }
    b.push_str("</tbody></table>");
    page("Incidents", &b).into_response()
}

async fn incident_page(
    State(sh): S,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (inc, alerts, tl) = match read(&sh, move |c| store::get_incident(c, id)).await {
        Ok(Some(x)) => x,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page("Not found", "<h1>No such incident</h1>"),
            )
                .into_response()
        }
        Err(r) => return r,
    };
    let mut b = String::new();
    if let Some(m) = q.get("msg") {
        let _ = write!(b, "<p class=\"msg\" id=\"msg\">{}</p>", esc(m));
    }
    let _ = write!(
        b,
        "<h1>Incident {} &middot; {} {}</h1><p>State: <span class=\"state {3}\" id=\"state\">{3}</span>{4} &middot; detector {5} &middot; score {6:.2} &middot; {7} alerts &middot; events {8} to {9}</p><p>{10}</p>",
        inc.id,
        esc(&inc.entity_kind),
        esc(&inc.entity_id),
        esc(&inc.state),
        inc.state_by.as_deref().map(|b| format!(" by {}", esc(b))).unwrap_or_default(),
        esc(&inc.detector),
        inc.score,
        inc.alerts,
        esc(&inc.first_ts),
        esc(&inc.last_ts),
        esc(&inc.summary)
    );
    let _ = write!(
        b,
        "<h2>Actions</h2><form method=\"post\" action=\"/incidents/{id}/action\" id=\"actions\"><label>Token <input type=\"password\" name=\"token\" id=\"token\"></label> <label>By <input name=\"by\" id=\"by\" placeholder=\"your name\"></label> <label>Note <input name=\"note\" id=\"note\"></label> <label>Minutes (contain; empty = until released) <input name=\"minutes\" id=\"minutes\" size=\"5\"></label><br>"
    );
    for (a, label) in [
        ("contain", "Contain"),
        ("release", "Release"),
        ("dismiss", "Dismiss"),
    ] {
        let _ = write!(b, "<button type=\"submit\" name=\"action\" value=\"{a}\" id=\"btn-{a}\">{label}</button> ");
    }
    b.push_str("</form><h2>Timeline</h2><table id=\"timeline\"><thead><tr><th>When (UTC)</th><th>What</th><th>By</th><th>Note</th></tr></thead><tbody>");
    for e in &tl {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            when(e.at),
            esc(&e.action),
            esc(&e.by),
            esc(&e.note)
        );
    }
    b.push_str("</tbody></table><h2>Evidence</h2>");
    for a in &alerts {
        let ev = evidence_text(a);
        let _ = write!(
            b,
            "<h3>{} &middot; {} &middot; score {:.2}</h3><p>{}</p><pre>{}</pre>",
            esc(&a.ts),
            esc(&a.detector),
            a.score,
            esc(&a.summary),
            esc(&ev)
        );
    }
    page(&format!("Incident {id}"), &b).into_response()
}

/// A stored alert's evidence as the incident page shows it: read through its detector's type
/// (`detect::evidence::Evidence`), or as stored, marked, when it has no known shape (an alert
/// stored by an older version).
fn evidence_text(a: &store::StoredAlert) -> String {
    let raw = a.alert.get("evidence").unwrap_or(&serde_json::Value::Null);
    let typed = detect::Detector::ALL
        .into_iter()
        .find(|d| d.as_str() == a.detector)
        .and_then(|d| Evidence::decode(d, raw).ok());
    match typed {
        Some(e) => serde_json::to_string_pretty(&e).unwrap_or_default(),
        None => format!(
            "(evidence of an unknown shape, as stored)\n{}",
            serde_json::to_string_pretty(raw).unwrap_or_default()
        ),
    }
}

#[derive(Debug, Deserialize)]
struct ActForm {
    token: Option<String>,
    action: String,
    by: Option<String>,
    note: Option<String>,
    minutes: Option<String>,
}

async fn form_action(State(sh): S, Path(id): Path<i64>, Form(f): Form<ActForm>) -> Response {
    let back =
        |m: &str| Redirect::to(&format!("/incidents/{id}?msg={}", url_enc(m))).into_response();
    if token_ok(&sh, f.token.as_deref()).is_err() {
        return back("Refused: a valid token is required");
    }
    let action = match f.action.as_str() {
        "contain" => Action::Contain,
        "release" => Action::Release,
        "dismiss" => Action::Dismiss,
        _ => return back("Unknown action"),
    };
    let body = ActBody {
        by: f.by,
        note: f.note,
        minutes: f.minutes.and_then(|m| m.trim().parse().ok()),
    };
    match send_act(&sh, id, action, body).await {
        Ok(_) => back(&format!("Done: {}", f.action)),
        Err(_) => back(&format!("Could not {}", f.action)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(url_enc("Done: a b/ü"), "Done%3A%20a%20b%2F%C3%BC");
        assert!(constant_eq(b"abc", b"abc"));
        assert!(!constant_eq(b"abc", b"abd"));
        assert!(!constant_eq(b"abc", b"ab"));
    }
}
