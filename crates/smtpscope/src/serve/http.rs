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

use super::held::{self, Op, Outcome};
use super::store::{self, Action, Cmd};
use super::{Mode, Shared};

type S = State<Arc<Shared>>;

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/overview", get(overview))
        .route("/incidents/{id}", get(incident_page))
        .route("/incidents/{id}/action", post(form_action))
        .route("/incidents/{id}/held", post(form_held))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/incidents", get(api_list))
        .route("/api/incidents/{id}", get(api_get))
        .route("/api/incidents/{id}/{action}", post(api_act))
        .route("/api/incidents/{id}/held/{op}", post(api_held))
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
    let mode = sh.live.load().mode;
    let mut body = serde_json::json!({
        "status": if db { "ok" } else { "degraded" },
        "store": db,
        "uptime_seconds": sh.started.elapsed().as_secs(),
        "mode": mode,
        "engine_queue": sh.metrics.queue_depth.load(std::sync::atomic::Ordering::Relaxed),
    });
    // In observe mode nothing is contained: the count is of what would be.
    body[contained_key(mode)] = sh.contained.load().len().into();
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
    let mode = sh.live.load().mode;
    match read(&sh, move |c| {
        store::list_incidents(c, state.as_deref(), text.as_deref(), limit)
    })
    .await
    {
        Ok(v) => Json(v.iter().map(|i| with_effect(i, mode)).collect::<Vec<_>>()).into_response(),
        Err(r) => r,
    }
}

/// The name of the count of contained entities in `/health`: `would_contain` in observe mode
/// (Postfix is answered DUNNO: nothing is contained), `contained` in enforce mode.
pub fn contained_key(mode: Mode) -> &'static str {
    match mode {
        Mode::Observe => "would_contain",
        Mode::Enforce => "contained",
    }
}

/// What an incident's state means for mail in the current mode: in observe mode a contained
/// entity is answered DUNNO, so it "would contain", never "contained".
pub fn effect(state: &str, mode: Mode) -> &str {
    match (state, mode) {
        ("contained", Mode::Observe) => "would contain",
        (s, _) => s,
    }
}

/// An incident as the API shows it: its row, and `effect` ([`effect`]).
fn with_effect(i: &store::Incident, mode: Mode) -> serde_json::Value {
    let mut v = serde_json::to_value(i).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("effect".into(), effect(&i.state, mode).into());
    }
    v
}

/// The command lines the incident's two hold-queue actions run, exactly (queue ids on
/// standard input), or in observe mode would run.
fn held_commands(sh: &Shared, ids: &[String]) -> serde_json::Value {
    let live = sh.live.load();
    let prefix = &live.containment.postsuper_command;
    serde_json::json!({
        "release": held::display(&Op::Release.argv(prefix), ids),
        "delete": held::display(&Op::Delete.argv(prefix), ids),
        "run": live.mode == Mode::Enforce,
    })
}

/// The queue ids still on hold among an incident's.
fn still_held(h: &[store::HeldId]) -> Vec<String> {
    h.iter()
        .filter(|x| x.state == "held" && held::valid_queue_id(&x.queue_id))
        .map(|x| x.queue_id.clone())
        .collect()
}

async fn api_get(State(sh): S, Path(id): Path<i64>) -> Response {
    let got = read(&sh, move |c| {
        Ok(store::get_incident(c, id)?.map(|d| (d, store::held_ids(c, id))))
    })
    .await;
    let mode = sh.live.load().mode;
    match got {
        Ok(Some(((inc, alerts, tl), held))) => {
            let held = held.unwrap_or_default();
            let cmds = held_commands(&sh, &still_held(&held));
            Json(serde_json::json!({
                "incident": with_effect(&inc, mode),
                "mode": mode,
                "alerts": alerts,
                "timeline": tl,
                "held": held,
                "held_commands": cmds,
            }))
            .into_response()
        }
        Ok(None) => err(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Err(r) => r,
    }
}

/// The containment list; each entry's `effect` says what it does in the current mode
/// ("contained", or "would contain" in observe mode).
async fn api_containment(State(sh): S) -> Response {
    let set = sh.contained.load();
    let mode = sh.live.load().mode;
    let mut v: Vec<_> = set.iter().collect();
    v.sort_by(|a, b| a.since.cmp(&b.since).then(a.id.cmp(&b.id)));
    let v: Vec<serde_json::Value> = v
        .into_iter()
        .map(|e| {
            let mut j = serde_json::to_value(e).unwrap_or_default();
            j["effect"] = effect("contained", mode).into();
            j
        })
        .collect();
    Json(v).into_response()
}

#[derive(Debug, Deserialize, Default)]
struct ActBody {
    by: Option<String>,
    note: Option<String>,
    minutes: Option<i64>,
    /// Dismiss (false positive) only: release the incident's held mail too (default yes).
    release_held: Option<bool>,
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
    let body = body.map(|b| b.0).unwrap_or_default();
    let (by, note) = (body.by.clone(), body.note.clone());
    let release = action == Action::Dismiss && body.release_held.unwrap_or(true);
    if let Err(r) = send_act(&sh, id, action, body).await {
        return r;
    }
    let mut out = serde_json::json!({"ok": true, "incident": id});
    if release {
        match held_action(&sh, id, Op::Release, by, note).await {
            Ok(d) => out["held"] = serde_json::to_value(d).unwrap_or_default(),
            Err(r) => return r,
        }
    }
    Json(out).into_response()
}

/// What a hold-queue action did.
#[derive(Debug, serde::Serialize)]
struct HeldDone {
    /// Queue ids it was for.
    ids: usize,
    /// Each command line, as shown.
    commands: Vec<String>,
    /// Each run's outcome (empty in observe mode: nothing ran).
    outcomes: Vec<Outcome>,
    /// All ran and exited 0 (observe mode: false).
    ok: bool,
}

/// Release or delete an incident's held mail: the queue ids still on hold, through the
/// configured command in batches of [`held::BATCH`] (not run in observe mode), each run
/// recorded in the incident's timeline.
async fn held_action(
    sh: &Arc<Shared>,
    incident: i64,
    op: Op,
    by: Option<String>,
    note: Option<String>,
) -> Result<HeldDone, Response> {
    let ids = read(sh, move |c| store::held_ids(c, incident)).await?;
    let ids = still_held(&ids);
    let live = sh.live.load();
    let argv = op.argv(&live.containment.postsuper_command);
    let run = live.mode == Mode::Enforce;
    let by = by
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "api".into());
    let mut done = HeldDone {
        ids: ids.len(),
        commands: Vec::new(),
        outcomes: Vec::new(),
        ok: run,
    };
    for batch in ids.chunks(held::BATCH) {
        let command = held::display(&argv, batch);
        let outcome = if run {
            let (a, b) = (argv.clone(), batch.to_vec());
            sh.metrics.postsuper_runs.inc();
            let o = tokio::task::spawn_blocking(move || held::run(&a, &b, held::COMMAND_TIMEOUT))
                .await
                .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            info!(incident, op = op.as_str(), status = ?o.status, "postsuper ran");
            done.ok &= o.ok();
            Some(o)
        } else {
            None
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cmd = Cmd::HeldDone {
            incident,
            op,
            ids: batch.to_vec(),
            command: command.clone(),
            outcome: outcome.clone(),
            by: by.clone(),
            note: note.clone().unwrap_or_default(),
            reply: tx,
        };
        let stx = sh.store_tx.clone();
        tokio::task::spawn_blocking(move || stx.send(cmd))
            .await
            .ok()
            .and_then(|r| r.ok())
            .ok_or_else(|| err(StatusCode::SERVICE_UNAVAILABLE, "store unavailable"))?;
        match rx.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(err(StatusCode::CONFLICT, e)),
            Err(_) => return Err(err(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")),
        }
        done.commands.push(command);
        done.outcomes.extend(outcome);
    }
    Ok(done)
}

#[derive(Debug, Deserialize, Default)]
struct HeldBody {
    by: Option<String>,
    note: Option<String>,
}

async fn api_held(
    State(sh): S,
    Path((id, op)): Path<(i64, String)>,
    headers: HeaderMap,
    body: Option<Json<HeldBody>>,
) -> Response {
    if let Err(r) = token_ok(&sh, bearer(&headers)) {
        return r;
    }
    let Some(op) = Op::parse(&op) else {
        return err(StatusCode::NOT_FOUND, "held mail actions: release, delete");
    };
    let b = body.map(|b| b.0).unwrap_or_default();
    match read(&sh, move |c| store::get_incident(c, id)).await {
        Ok(Some(_)) => {}
        Ok(None) => return err(StatusCode::NOT_FOUND, format!("no incident {id}")),
        Err(r) => return r,
    }
    match held_action(&sh, id, op, b.by, b.note).await {
        Ok(d) => Json(d).into_response(),
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:72em;color:#222}table#incidents,table#timeline,table#held{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f4f4f4}.state{font-weight:bold;padding:.1em .4em;border-radius:.3em}.open{background:#fe9}.contained{background:#f99}.released{background:#9e9}.dismissed{background:#ddd}pre{background:#f8f8f8;padding:.5em;overflow:auto;max-height:30em}form.inline{display:inline-block;margin-right:1em}code.cmd{display:block;background:#f8f8f8;padding:.5em;overflow-wrap:anywhere;max-height:10em;overflow:auto}nav a{margin-right:1em}.msg{padding:.5em;background:#eef}";

/// A dashboard page: the HTML report's style (its figures, evidence tables and listings look
/// the same), then the dashboard's own.
fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - smtpscope</title><style>{}{STYLE}</style></head><body><nav><a href=\"/overview\">Overview</a><a href=\"/\">Incidents</a><a href=\"/api/containment\">Containment (JSON)</a><a href=\"/metrics\">Metrics</a><a href=\"/health\">Health</a></nav>{body}</body></html>",
        esc(title),
        crate::html::report::CSS
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
    let mode = live.mode;
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>smtpscope incidents</h1><p>Mode: <b id=\"mode\">{:?}</b> &middot; {} now: <b id=\"contained\">{}</b> &middot; ",
        live.mode,
        effect("contained", mode),
        sh.contained.load().len()
    );
    for (s, n) in &counts {
        let _ = write!(
            b,
            "<a href=\"/?state={}\">{}</a>: {n} ",
            esc(s),
            esc(effect(s, mode))
        );
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
        let _ = write!(b, "<option value=\"{s}\"{sel}>{}</option>", effect(s, mode));
    }
    b.push_str("</select> <button type=\"submit\">Search</button></form>");
    b.push_str("<table id=\"incidents\"><thead><tr><th>#</th><th>State</th><th>Entity</th><th>Detector</th><th>Score</th><th>Alerts</th><th>Last event</th><th>Summary</th></tr></thead><tbody>");
    for i in &list {
        let _ = write!(
            b,
            "<tr><td><a href=\"/incidents/{0}\">{0}</a></td><td><span class=\"state {1}\">{9}</span></td><td>{2} <a href=\"/incidents/{0}\">{3}</a></td><td>{4}</td><td>{5:.2}</td><td>{6}</td><td>{7}</td><td>{8}</td></tr>",
            i.id,
            esc(&i.state),
            esc(&i.entity_kind),
            esc(&i.entity_id),
            esc(&i.detector),
            i.score,
            i.alerts,
            esc(&i.last_ts),
            esc(&i.summary),
            esc(effect(&i.state, mode))
        );
    }
    if list.is_empty() {
        b.push_str("<tr><td colspan=\"8\">No incidents.</td></tr>");
    }
    b.push_str("</tbody></table>");
    page("Incidents", &b).into_response()
}

/// Most stored alerts about accounts the overview reads (the newest): figure 1 counts the
/// accounts they name per day and figures 2 to 5 follow the auth-hijack ones. A week of a
/// 200,000-user ISP raises a few thousand; past this the page says the oldest were left out.
/// Our own idea.
pub const OVERVIEW_ALERTS: i64 = 20_000;

async fn overview(State(sh): S) -> Response {
    let shared = sh.clone();
    let got = read(&sh, move |c| {
        let (raw, cut) = store::account_alerts(c, OVERVIEW_ALERTS)?;
        let counts = store::counts(c)?;
        Ok(overview_body(&shared, &raw, cut, &counts))
    })
    .await;
    match got {
        Ok(b) => page("Overview", &b).into_response(),
        Err(r) => r,
    }
}

/// The overview: IIJ's five figures over the collector's window (`html::report::iij_figures`,
/// the report's code), from the stored alerts about accounts and the records the engine
/// thread saw ([`Shared::seen`]), with what the collector left out.
fn overview_body(
    sh: &Shared,
    raw: &[serde_json::Value],
    cut: bool,
    counts: &[(String, i64)],
) -> String {
    use crate::seen::SERVE_WINDOW_MINUTES;
    let live = sh.live.load();
    let mode = live.mode;
    let mut alerts: Vec<detect::Alert> = raw
        .iter()
        .filter_map(crate::report::alert_from_json)
        .collect();
    alerts.sort_by_key(|a| a.ts);
    let (span, kept, dropped, evicted, refused, bounds) = {
        let s = sh.seen.lock().unwrap_or_else(|p| p.into_inner());
        (
            s.span(),
            s.len(),
            s.dropped,
            s.evicted,
            s.watch_refused,
            s.bounds(),
        )
    };
    // The window: the week before the newest record or alert; older alerts are left out, as
    // the collector let their records go.
    let newest = span
        .map(|p| p.1)
        .into_iter()
        .chain(alerts.last().map(|a| a.ts))
        .max();
    if let Some(n) = newest {
        let from = n.plus_secs(-i64::from(SERVE_WINDOW_MINUTES) * 60);
        alerts.retain(|a| a.ts >= from);
    }
    let period = match (span, alerts.first(), alerts.last()) {
        (Some((a, b)), Some(x), Some(y)) => Some((a.min(x.ts), b.max(y.ts))),
        (Some(p), _, _) => Some(p),
        (None, Some(x), Some(y)) => Some((x.ts, y.ts)),
        _ => None,
    };
    let incidents = crate::pipeline::incidents(&alerts, live.containment.policy());
    let list = incidents.list();
    let hijacked = crate::html::figures::hijacked(list);
    let accounts: Vec<&detect::Entity> = hijacked.iter().map(|h| h.entity).collect();
    let seen = sh
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .subset(&accounts);
    let mut b = format!(
        "<h1>smtpscope overview</h1><p>Mode: <b id=\"mode\">{mode:?}</b> &middot; {} now: <b id=\"contained\">{}</b> &middot; incidents: ",
        effect("contained", mode),
        sh.contained.load().len()
    );
    for (st, n) in counts {
        let _ = write!(
            b,
            "<a href=\"/?state={}\">{}</a>: <span class=\"count\" data-state=\"{}\">{n}</span> ",
            esc(st),
            esc(effect(st, mode)),
            esc(effect(st, mode))
        );
    }
    b.push_str("</p><table class=\"kv\" id=\"window\">");
    match period {
        Some((a, z)) => {
            let _ = write!(
                b,
                "<tr><th>period</th><td id=\"period\">{} .. {} UTC</td></tr>",
                a.display_utc(),
                z.display_utc()
            );
        }
        None => b.push_str("<tr><th>period</th><td id=\"period\">nothing seen yet</td></tr>"),
    }
    let window_days = bounds.window_minutes.unwrap_or(SERVE_WINDOW_MINUTES) / (24 * 60);
    let _ = write!(
        b,
        "<tr><th>message records</th><td id=\"seen\">{kept} kept (of at most {}, the last {window_days} days of log time this process saw; what was read before a restart is not in them)</td></tr>",
        bounds.max_rows
    );
    let _ = write!(
        b,
        "<tr><th>left out</th><td id=\"left-out\">{dropped} records of unflagged senders at the cap; {evicted} let go (out of the window, or replaced by a flagged account's); {refused} alerts whose entity was not kept past the cap</td></tr>"
    );
    let _ = write!(
        b,
        "<tr><th>alerts</th><td id=\"alerts\">{} about accounts in the period{}</td></tr></table>",
        alerts.len(),
        if cut {
            format!(" (only the newest {OVERVIEW_ALERTS} stored were read)")
        } else {
            String::new()
        }
    );
    b.push_str(
        &crate::html::report::iij_figures(&alerts, list, &seen, &sh.geo, period).into_string(),
    );
    b
}

async fn incident_page(
    State(sh): S,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let got = read(&sh, move |c| {
        Ok(store::get_incident(c, id)?.map(|d| (d, store::held_ids(c, id))))
    })
    .await;
    let ((inc, alerts, tl), held) = match got {
        Ok(Some((d, h))) => (d, h.unwrap_or_default()),
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page("Not found", "<h1>No such incident</h1>"),
            )
                .into_response()
        }
        Err(r) => return r,
    };
    let mode = sh.live.load().mode;
    let mut b = String::new();
    if let Some(m) = q.get("msg") {
        let _ = write!(b, "<p class=\"msg\" id=\"msg\">{}</p>", esc(m));
    }
    let _ = write!(
        b,
        "<h1>Incident {} &middot; {} {}</h1><p>State: <span class=\"state {3}\" id=\"state\">{11}</span>{4} &middot; detector {5} &middot; score {6:.2} &middot; {7} alerts &middot; events {8} to {9}</p><p id=\"headline\">{10}</p>",
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
        esc(&inc.summary),
        esc(effect(&inc.state, mode))
    );
    let _ = write!(
        b,
        "<h2>Actions</h2><form method=\"post\" action=\"/incidents/{id}/action\" id=\"actions\"><label>Token <input type=\"password\" name=\"token\" id=\"token\"></label> <label>By <input name=\"by\" id=\"by\" placeholder=\"your name\"></label> <label>Note <input name=\"note\" id=\"note\"></label> <label>Minutes (contain; empty = until released) <input name=\"minutes\" id=\"minutes\" size=\"5\"></label><br>"
    );
    let (contain_label, release_label) = match mode {
        Mode::Enforce => ("Contain", "Release"),
        Mode::Observe => ("Contain (observe mode: would contain)", "Release"),
    };
    for (a, label) in [
        ("contain", contain_label),
        ("release", release_label),
        ("dismiss", "Dismiss as false positive"),
    ] {
        let _ = write!(b, "<button type=\"submit\" name=\"action\" value=\"{a}\" id=\"btn-{a}\">{label}</button> ");
    }
    let _ = write!(
        b,
        "<br><label><input type=\"checkbox\" name=\"release_held\" id=\"release-held\" value=\"1\" checked> dismissing as a false positive also {} its held mail ({} message(s))</label>",
        if mode == Mode::Enforce { "releases" } else { "would release" },
        still_held(&held).len()
    );
    b.push_str("</form>");
    held_section(&mut b, &sh, id, &held, mode);
    b.push_str("<h2>Timeline</h2><table id=\"timeline\"><thead><tr><th>When (UTC)</th><th>What</th><th>By</th><th>Note</th></tr></thead><tbody>");
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
    b.push_str("</tbody></table>");
    if q.get("raw").is_some_and(|v| v != "0") {
        raw_evidence(&mut b, id, &alerts);
    } else {
        let shared = sh.clone();
        let kind = inc.entity_kind.clone();
        let entity = inc.entity_id.clone();
        let ev = tokio::task::spawn_blocking(move || {
            evidence_section(&shared, id, &kind, &entity, &alerts)
        })
        .await
        .unwrap_or_default();
        b.push_str(&ev);
    }
    page(&format!("Incident {id}"), &b).into_response()
}

/// The incident page's evidence, as the HTML report shows it (`html::report`): the rules
/// table, each detector's latest evidence as tables, the message listing, and what its
/// entities sent in the overview's window (timeline chart, countries, networks). The alerts
/// as stored are one link away (`?raw=1`).
fn evidence_section(
    sh: &Shared,
    id: i64,
    kind: &str,
    entity: &str,
    stored: &[store::StoredAlert],
) -> String {
    use crate::html::report;
    let alerts: Vec<detect::Alert> = stored
        .iter()
        .filter_map(|a| crate::report::alert_from_json(&a.alert))
        .collect();
    let unread = stored.len() - alerts.len();
    let members = match store::parse_kind(kind) {
        Some(k) => report::members(&detect::Entity::new(k, entity), &alerts),
        None => Vec::new(),
    };
    let refs: Vec<&detect::Entity> = members.iter().collect();
    let seen = sh
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .subset(&refs);
    let mut b = format!(
        "<h2>Evidence</h2><p class=\"note\">The latest alert of each detector, read through its evidence type; <a id=\"raw-link\" href=\"/incidents/{id}?raw=1\">the {} stored alerts as JSON</a>.</p>",
        stored.len()
    );
    if unread > 0 {
        let _ = write!(
            b,
            "<p class=\"note\" id=\"unread\">{unread} alerts of a shape this version does not read: see them as JSON.</p>"
        );
    }
    b.push_str(&report::rules_and_evidence(&report::latest(&alerts)).into_string());
    b.push_str("<h2>Activity</h2><p class=\"note\">The mail its entities sent, as this service saw it since it started (the overview's window).</p>");
    b.push_str(&report::activity(id.max(0) as u64, &members, &seen, &sh.geo).into_string());
    b
}

/// The incident's alerts as stored (JSON), each read through its detector's type when it can.
fn raw_evidence(b: &mut String, id: i64, alerts: &[store::StoredAlert]) {
    let _ = write!(
        b,
        "<h2>Alerts as JSON</h2><p><a id=\"tables-link\" href=\"/incidents/{id}\">Back to the evidence as tables</a></p>"
    );
    for a in alerts {
        let ev = evidence_text(a);
        let _ = write!(
            b,
            "<h3>{} &middot; {} &middot; score {:.2}</h3><p>{}</p><pre class=\"raw\">{}</pre>",
            esc(&a.ts),
            esc(&a.detector),
            a.score,
            esc(&a.summary),
            esc(&ev)
        );
    }
}

/// Most held queue ids listed on the incident page (all are acted on; the API lists all).
const HELD_SHOWN: usize = 200;

/// The incident page's "Held mail" section: the queue ids Postfix held for it, the exact
/// commands the two actions run, and their form (token-protected like the actions above).
fn held_section(b: &mut String, sh: &Shared, id: i64, held: &[store::HeldId], mode: Mode) {
    let ids = still_held(held);
    let hold = match mode {
        Mode::Enforce => "held",
        Mode::Observe => "would hold (observe mode: Postfix holds nothing)",
    };
    let _ = write!(
        b,
        "<h2>Held mail</h2><p>Queue ids Postfix {hold} for this incident: <b id=\"held-count\">{}</b> still on hold of {} recorded.</p>",
        ids.len(),
        held.len()
    );
    if !held.is_empty() {
        b.push_str("<table id=\"held\"><thead><tr><th>Queue id</th><th>State</th><th>From</th><th>When (UTC)</th></tr></thead><tbody>");
        for h in held.iter().take(HELD_SHOWN) {
            let _ = write!(
                b,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&h.queue_id),
                esc(&h.state),
                esc(&h.source),
                when(h.at)
            );
        }
        b.push_str("</tbody></table>");
        if held.len() > HELD_SHOWN {
            let _ = write!(
                b,
                "<p>{} more in <a href=\"/api/incidents/{id}\">the API</a>.</p>",
                held.len() - HELD_SHOWN
            );
        }
    }
    let cmds = held_commands(sh, &ids);
    let (verb, run) = match mode {
        Mode::Enforce => ("runs", ""),
        Mode::Observe => ("would run", " (observe mode: shown and recorded, not run)"),
    };
    let _ = write!(
        b,
        "<p>&ldquo;Release held mail&rdquo; {verb}{run}: <code class=\"cmd\" id=\"cmd-release\">{}</code></p><p>&ldquo;Delete held spam&rdquo; {verb}{run}: <code class=\"cmd\" id=\"cmd-delete\">{}</code></p>",
        esc(cmds["release"].as_str().unwrap_or("")),
        esc(cmds["delete"].as_str().unwrap_or(""))
    );
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/incidents/{id}/held\" id=\"held-actions\"><label>Token <input type=\"password\" name=\"token\" id=\"held-token\"></label> <label>By <input name=\"by\" id=\"held-by\"></label> <label>Note <input name=\"note\" id=\"held-note\"></label> <button type=\"submit\" name=\"op\" value=\"release\" id=\"btn-held-release\">Release held mail</button> <button type=\"submit\" name=\"op\" value=\"delete\" id=\"btn-held-delete\">Delete held spam</button></form>"
    );
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
    /// The "also release its held mail" box (checked by default; absent when unticked).
    release_held: Option<String>,
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
    let release = action == Action::Dismiss && f.release_held.is_some();
    let (by, note) = (f.by.clone(), f.note.clone());
    let body = ActBody {
        by: f.by,
        note: f.note,
        minutes: f.minutes.and_then(|m| m.trim().parse().ok()),
        release_held: None,
    };
    if send_act(&sh, id, action, body).await.is_err() {
        return back(&format!("Could not {}", f.action));
    }
    if !release {
        return back(&format!("Done: {}", f.action));
    }
    match held_action(&sh, id, Op::Release, by, note).await {
        Ok(d) => back(&format!(
            "Done: {}; {}",
            f.action,
            held_message(Op::Release, &d)
        )),
        Err(_) => back(&format!(
            "Done: {}; could not release its held mail",
            f.action
        )),
    }
}

/// One line on what a hold-queue action did, for the page's message.
fn held_message(op: Op, d: &HeldDone) -> String {
    let what = match op {
        Op::Release => "release",
        Op::Delete => "delete",
    };
    if d.ids == 0 {
        format!("no held mail to {what}")
    } else if d.outcomes.is_empty() {
        format!("observe mode: would {what} {} held message(s)", d.ids)
    } else if d.ok {
        format!("{what}: {} held message(s), postsuper exited 0", d.ids)
    } else {
        format!(
            "{what} of {} held message(s) FAILED (see the timeline)",
            d.ids
        )
    }
}

#[derive(Debug, Deserialize)]
struct HeldForm {
    token: Option<String>,
    op: String,
    by: Option<String>,
    note: Option<String>,
}

async fn form_held(State(sh): S, Path(id): Path<i64>, Form(f): Form<HeldForm>) -> Response {
    let back =
        |m: &str| Redirect::to(&format!("/incidents/{id}?msg={}", url_enc(m))).into_response();
    if token_ok(&sh, f.token.as_deref()).is_err() {
        return back("Refused: a valid token is required");
    }
    let Some(op) = Op::parse(&f.op) else {
        return back("Unknown action");
    };
    match held_action(&sh, id, op, f.by, f.note).await {
        Ok(d) => back(&held_message(op, &d)),
        Err(_) => back("Could not act on the held mail"),
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
