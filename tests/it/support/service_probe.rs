//! A steady client load on running servers that records every answer with its send and
//! receive instants, so a scenario can say what the servers answered before, during and
//! after an event (a database restart, a downgrade) without timing asserts: "every request
//! sent after the first refusal and answered before the upgrade began was refused".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::reliability::service::TenantIds;

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// A v3 or v1 read of the tenant's data (the label names which).
    Data(&'static str),
    Ready,
    Health,
}

/// The pseudo status of a request that got no HTTP answer (connection refused or closed,
/// client timeout).
pub const NO_ANSWER: u16 = 599;

/// One answer as the client saw it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub server: usize,
    pub route: Route,
    pub sent: Instant,
    pub received: Instant,
    pub status: u16,
    /// `error.code` of an error envelope, or the transport error of a [`NO_ANSWER`].
    pub code: String,
}

impl Answer {
    pub fn is_data(&self) -> bool {
        matches!(self.route, Route::Data(_))
    }

    pub fn describe(&self, origin: Instant) -> String {
        format!(
            "server {} {:?} sent +{}ms answered +{}ms: {} {}",
            self.server,
            self.route,
            self.sent.duration_since(origin).as_millis(),
            self.received.duration_since(origin).as_millis(),
            self.status,
            self.code
        )
    }
}

/// Whether a server's clients also call `/ready`. `/ready` checks the schema live and the
/// server's schema gate takes that check; a server nobody probes follows the schema by its
/// own poll only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyProbe {
    Probed,
    NotProbed,
}

/// Clients sending v3 and v1 reads, `/health` and (where asked) `/ready` in a loop to each
/// server until stopped.
pub struct Probe {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Probe {
    /// Starts `workers_per_server` clients per server, all reading `tenant`'s data.
    pub fn start(
        servers: &[(String, ReadyProbe)],
        tenant: &TenantIds,
        workers_per_server: usize,
    ) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let mut workers = Vec::new();
        for (server, (base, ready)) in servers.iter().enumerate() {
            let routes: Vec<(Route, String)> = routes(tenant)
                .into_iter()
                .filter(|(route, _)| *route != Route::Ready || *ready == ReadyProbe::Probed)
                .collect();
            for worker in 0..workers_per_server {
                let (stop, answers, client, routes, base, tenant) = (
                    stop.clone(),
                    answers.clone(),
                    client.clone(),
                    routes.clone(),
                    base.clone(),
                    tenant.clone(),
                );
                workers.push(tokio::spawn(async move {
                    // Each worker starts at another route so all routes are in flight at once.
                    let mut n = worker;
                    while !stop.load(Ordering::Relaxed) {
                        let (route, path) = &routes[n % routes.len()];
                        n += 1;
                        let answer = one(&client, server, &base, &tenant, *route, path).await;
                        answers.lock().unwrap().push(answer);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }));
            }
        }
        Probe {
            stop,
            answers,
            workers,
        }
    }

    /// Every answer so far.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// Waits for the first answer (in order of arrival) that satisfies `wanted`; None after
    /// `limit`.
    pub async fn wait_for(
        &self,
        limit: Duration,
        wanted: impl Fn(&Answer) -> bool,
    ) -> Option<Answer> {
        let deadline = Instant::now() + limit;
        loop {
            let found = self
                .answers
                .lock()
                .unwrap()
                .iter()
                .filter(|answer| wanted(answer))
                .min_by_key(|answer| answer.received)
                .cloned();
            if found.is_some() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients, waits for the requests in flight, and returns every answer in
    /// order of arrival.
    pub async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        let mut answers = self.answers.lock().unwrap().clone();
        answers.sort_by_key(|answer| answer.received);
        answers
    }
}

/// The routes each worker cycles through.
fn routes(ids: &TenantIds) -> Vec<(Route, String)> {
    vec![
        (
            Route::Data("v3 flow"),
            format!("/api/v3/discovery-flow/flows/{}", ids.flow),
        ),
        (
            Route::Data("v3 flows"),
            "/api/v3/discovery-flow/flows?limit=20".to_owned(),
        ),
        (
            Route::Data("v1 flow status"),
            format!("/api/v1/unified-discovery/flow/status/{}", ids.session),
        ),
        (
            Route::Data("v3 records"),
            format!(
                "/api/v3/data-import/imports/{}/records?limit=20",
                ids.import
            ),
        ),
        (
            Route::Data("v1 import"),
            format!("/api/v1/data-import/import/{}", ids.session),
        ),
        (Route::Ready, "/ready".to_owned()),
        (Route::Health, "/health".to_owned()),
    ]
}

async fn one(
    client: &reqwest::Client,
    server: usize,
    base: &str,
    tenant: &TenantIds,
    route: Route,
    path: &str,
) -> Answer {
    let sent = Instant::now();
    let result = client
        .get(format!("{base}{path}"))
        .header("X-Client-Account-Id", &tenant.client)
        .header("X-Engagement-Id", &tenant.engagement)
        .send()
        .await;
    let (status, code) = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
            (status, code)
        }
        Err(err) => (NO_ANSWER, err.to_string()),
    };
    Answer {
        server,
        route,
        sent,
        received: Instant::now(),
        status,
        code,
    }
}

/// Counts answers by "server route status code", for messages and figures.
pub fn tally<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for answer in answers {
        let key = format!(
            "{} {:?} {} {}",
            answer.server, answer.route, answer.status, answer.code
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
        .iter()
        .map(|(key, count)| format!("{count}x {key}"))
        .collect::<Vec<_>>()
        .join(", ")
}
