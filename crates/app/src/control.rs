//! The server side of `r53dns ctl`, as `rndc` and `knotc` have it: `status`, `reload [ZONE]`,
//! `zone-status ZONE`, `retransfer ZONE`, `notify ZONE`, `refresh ZONE`, `stats`, `sync` and
//! `zones`, each answering JSON.
//!
//! Served on a UNIX socket (`[server] control-socket`; who may use it is decided by the
//! file's permissions: owner and group, mode 0660) and, when the HTTP admin routes are on,
//! under `/ctl/` on the HTTP endpoint with the same checks as the other admin routes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use r53dns_metrics::Probes as _;
use r53dns_server::CancellationToken;
use r53dns_zone::Name;

use crate::Reloader;
use crate::telemetry::AppProbes;

/// What the control verbs act on.
pub(crate) struct Control {
    pub(crate) started: Instant,
    pub(crate) probes: Arc<AppProbes>,
    pub(crate) secondaries: Option<Arc<crate::secondary::Secondaries>>,
    pub(crate) metrics: Arc<r53dns_metrics::Metrics>,
    /// Set once the server is up (the HTTP endpoint starts before it).
    pub(crate) reloader: OnceLock<Arc<Reloader>>,
}

type Shared = State<Arc<Control>>;

/// The routes, at the root (the UNIX socket) — nest them elsewhere for HTTP.
pub(crate) fn router(control: Arc<Control>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/reload", post(reload_all))
        .route("/reload/{zone}", post(reload_zone))
        .route("/zone-status/{zone}", get(zone_status))
        .route("/retransfer/{zone}", post(retransfer))
        .route("/notify/{zone}", post(notify))
        .route("/refresh/{zone}", post(refresh))
        .route("/stats", get(stats))
        .route("/sync", post(sync))
        .route("/zones", get(zones))
        .with_state(control)
}

fn json(code: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into()) + "\n";
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    json(code, &serde_json::json!({ "error": message.into() }))
}

/// A zone name from the URL: absolute, case kept.
fn zone_name(text: &str) -> Result<Name, String> {
    let text = if text.ends_with('.') { text.to_owned() } else { format!("{text}.") };
    Name::parse(&text, None).map_err(|e| format!("'{text}' is not a domain name: {e}"))
}

async fn status(State(c): Shared) -> Response {
    let zones = c.probes.zones();
    let mut names: Vec<String> = zones.iter().map(|z| z.name.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    let count = |prefix: &str| zones.iter().filter(|z| z.source.starts_with(prefix)).count();
    let route53 = c.probes.status.as_ref().map(|s| {
        serde_json::json!({
            "confirmed_seconds_ago": s.age().map(|a| a.as_secs()),
            "zones": s.zones().len(),
        })
    });
    let secondaries = c.secondaries.as_ref().map(|s| s.status());
    json(
        StatusCode::OK,
        &serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": c.started.elapsed().as_secs(),
            "ready": c.probes.ready(),
            "readiness": c.probes.readiness_detail(),
            "zones": names.len(),
            "views": if zones.iter().any(|z| z.view == "external") { 2 } else { 1 },
            "zones_by_source": {
                "file": count("file:"),
                "route53": count("route53:"),
                "secondary": count("secondary:"),
            },
            "route53": route53,
            "secondaries": secondaries,
        }),
    )
}

async fn reload(c: &Control, only: Option<&Name>) -> Response {
    let Some(r) = c.reloader.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is still starting");
    };
    let report = r.reload().await;
    let wanted = |apex: &Name| only.is_none_or(|o| o.to_lowercase() == apex.to_lowercase());
    let loaded: Vec<serde_json::Value> = report
        .loaded
        .iter()
        .filter(|(_, apex, ..)| wanted(apex))
        .map(|(file, apex, serial, records, audience)| {
            serde_json::json!({
                "zone": apex.to_text(),
                "file": file.display().to_string(),
                "serial": serial,
                "records": records,
                "audience": format!("{audience:?}").to_ascii_lowercase(),
            })
        })
        .collect();
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    if let Some(o) = only
        && loaded.is_empty()
        && errors.is_empty()
    {
        let served = c.probes.zones().into_iter().find(|z| z.name.eq_ignore_ascii_case(&o.to_text()));
        return match served {
            Some(z) => error(
                StatusCode::CONFLICT,
                format!("zone {} comes from {}, not from a file; use refresh", z.name, z.source),
            ),
            None => error(StatusCode::NOT_FOUND, format!("zone {o} is not served here")),
        };
    }
    let code = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    json(code, &serde_json::json!({ "loaded": loaded, "errors": errors, "warnings": report.warnings }))
}

async fn reload_all(State(c): Shared) -> Response {
    reload(&c, None).await
}

async fn reload_zone(State(c): Shared, UrlPath(zone): UrlPath<String>) -> Response {
    match zone_name(&zone) {
        Ok(z) => reload(&c, Some(&z)).await,
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn zone_status(State(c): Shared, UrlPath(zone): UrlPath<String>) -> Response {
    let apex = match zone_name(&zone) {
        Ok(z) => z.to_text(),
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let views: Vec<_> = c.probes.zones().into_iter().filter(|z| z.name.eq_ignore_ascii_case(&apex)).collect();
    if views.is_empty() {
        return error(StatusCode::NOT_FOUND, format!("zone {apex} is not served here"));
    }
    let secondary =
        c.secondaries.as_ref().and_then(|s| s.status().into_iter().find(|z| z.name.eq_ignore_ascii_case(&apex)));
    json(StatusCode::OK, &serde_json::json!({ "zone": apex, "views": views, "secondary": secondary }))
}

async fn retransfer(State(c): Shared, UrlPath(zone): UrlPath<String>) -> Response {
    let apex = match zone_name(&zone) {
        Ok(z) => z,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if c.secondaries.as_ref().is_some_and(|s| s.retransfer(&apex)) {
        tracing::info!(zone = %apex, "ctl: whole transfer requested");
        json(StatusCode::ACCEPTED, &serde_json::json!({ "zone": apex.to_text(), "transfer": "started" }))
    } else {
        error(StatusCode::NOT_FOUND, format!("zone {apex} is not a secondary zone here"))
    }
}

async fn refresh(State(c): Shared, UrlPath(zone): UrlPath<String>) -> Response {
    let apex = match zone_name(&zone) {
        Ok(z) => z,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if c.secondaries.as_ref().is_some_and(|s| s.refresh(&apex)) {
        return json(StatusCode::ACCEPTED, &serde_json::json!({ "zone": apex.to_text(), "refresh": "primary asked" }));
    }
    let served = c.probes.zones().into_iter().find(|z| z.name.eq_ignore_ascii_case(&apex.to_text()));
    match served {
        Some(z) if z.source.starts_with("route53:") && c.probes.trigger_sync() => {
            json(StatusCode::ACCEPTED, &serde_json::json!({ "zone": z.name, "refresh": "Route53 sweep started" }))
        }
        Some(z) => {
            error(StatusCode::CONFLICT, format!("zone {} comes from {}; use reload for zone files", z.name, z.source))
        }
        None => error(StatusCode::NOT_FOUND, format!("zone {apex} is not served here")),
    }
}

async fn notify(State(c): Shared, UrlPath(zone): UrlPath<String>) -> Response {
    let apex = match zone_name(&zone) {
        Ok(z) => z,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(r) = c.reloader.get() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is still starting");
    };
    let config = r.config.load();
    let targets = &config.notify;
    if targets.is_empty() {
        return error(StatusCode::CONFLICT, "no NOTIFY targets are configured ([server] notify)");
    }
    let snapshot = c.probes.store.load();
    let Some(z) = snapshot.internal().get(&apex).filter(|z| z.apex().to_lowercase() == apex.to_lowercase()) else {
        return error(StatusCode::NOT_FOUND, format!("zone {apex} is not served here"));
    };
    let soa = z
        .apex_node()
        .get(r53dns_zone::rtype::SOA)
        .and_then(|set| Some(crate::notify::Soa { ttl: set.ttl(), rdata: set.rdatas().first()?.to_vec() }));
    let key = config.notify_key.clone().map(Arc::new);
    crate::notify::spawn(targets, key, vec![(z.apex().clone(), soa)]);
    tracing::info!(zone = %apex, targets = targets.len(), "ctl: NOTIFY sent");
    let sent: Vec<String> = targets.iter().map(ToString::to_string).collect();
    json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "zone": z.apex().to_text(), "serial": z.serial(), "targets": sent }),
    )
}

async fn stats(State(c): Shared) -> Response {
    c.probes.before_scrape();
    let body = c.metrics.json() + "\n";
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn sync(State(c): Shared) -> Response {
    if c.probes.trigger_sync() {
        json(StatusCode::ACCEPTED, &serde_json::json!({ "sync": "started" }))
    } else {
        error(StatusCode::CONFLICT, "no Route53 source configured")
    }
}

async fn zones(State(c): Shared) -> Response {
    json(StatusCode::OK, &serde_json::to_value(c.probes.zones()).unwrap_or_default())
}

/// Binds the control socket at `path`: a socket file left by a server that is gone is
/// replaced, one a live server answers on is an error. Mode 0660.
pub(crate) fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running server", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// Serves the control routes on `listener` until `shutdown`, then removes the socket file.
pub(crate) async fn serve(
    listener: tokio::net::UnixListener,
    path: PathBuf,
    control: Arc<Control>,
    shutdown: CancellationToken,
) {
    tracing::info!(socket = %path.display(), "serving the control socket");
    let app = router(control);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await {
        tracing::error!(error = %e, "control socket stopped");
    }
    let _ = std::fs::remove_file(&path);
}
