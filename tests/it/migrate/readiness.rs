//! Readiness from the last stored verification plus a cheap delta (issue 12, item 4): the
//! link checks run once and are stored; readiness answers from them until a migration runs,
//! old code writes, a row is left without a `flow_id`, or the stored result is too old; then
//! it checks again and stores the new result. Each case of the delta is tested alone.

use std::time::Duration;

use flowkey::flags::{readiness, Readiness};
use flowkey::migrate::flow::verification_record::{
    last_standing, verify_and_record, verify_and_record_online, Stored,
};

use crate::both_engines;
use crate::support::flow_fixtures::Fx;
use crate::support::flow_support::{downgrade_to, upgrade_to};
use crate::support::harness::TestDb;

/// The next readiness answers from the stored verification.
async fn from_storage(fx: &Fx) -> Readiness {
    let next = readiness(&fx.db).await.unwrap();
    assert_eq!(
        next.checks.from, "stored",
        "nothing changed, yet the checks ran again: {:?}",
        next.checks
    );
    assert!(next.checks.verified_at.is_some());
    next
}

fn stale_because(readiness: &Readiness, why: &str) {
    assert_eq!(readiness.checks.from, "checked", "{:?}", readiness.checks);
    let reason = readiness.checks.reason.as_deref().unwrap_or_default();
    assert!(reason.contains(why), "{reason:?} does not say {why:?}");
}

async fn readiness_answers_from_the_stored_verification_until_something_changes(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "head").await;
    let fx = Fx::new(db).await;
    let tenant = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    let flow = fx.flow(tenant, None, Some(session), None, 1).await;
    assert!(
        fx.mapping_of(session).await.is_some(),
        "the live mapping maps it"
    );

    let first = readiness(&fx.db).await.unwrap();
    stale_because(&first, "no verification stored yet");
    let stored = readiness(&fx.db).await.unwrap();
    assert_eq!(stored.checks.from, "stored", "{:?}", stored.checks);
    assert!(stored.is_ready(), "{:?}", stored.reasons());

    // Old code writes a row by session key: logged by the signal, the checks run again.
    let asset = fx.asset(tenant, Some(session)).await;
    assert_eq!(fx.flow_of("assets", asset).await, Some(flow));
    stale_because(&readiness(&fx.db).await.unwrap(), "legacy writes");
    assert!(from_storage(&fx).await.is_ready());

    // A row no rule links (no session, no flow): one more row without a flow_id.
    fx.llm(Some(tenant), None).await;
    stale_because(
        &readiness(&fx.db).await.unwrap(),
        "rows without a flow_id changed",
    );
    from_storage(&fx).await;

    // A downgrade and an upgrade back: the same revision, but a migration ran.
    downgrade_to(&fx.db, "-1").await;
    upgrade_to(&fx.db, "head").await;
    stale_because(&readiness(&fx.db).await.unwrap(), "a migration ran");
    from_storage(&fx).await;

    // `flowkey verify` stores its result too.
    fx.llm(Some(tenant), None).await;
    verify_and_record(&fx.db).await.unwrap();
    let after_verify = readiness(&fx.db).await.unwrap();
    assert_eq!(
        after_verify.checks.from, "stored",
        "{:?}",
        after_verify.checks
    );

    // A session without a mapping is counted live, whatever is stored.
    fx.sql("DELETE FROM session_flow_mapping").await;
    let unmapped = readiness(&fx.db).await.unwrap();
    assert_eq!(unmapped.sessions_unmapped, 1);
    assert!(!unmapped.is_ready());
}
both_engines!(
    readiness_answers_from_the_stored_verification_until_something_changes,
    readiness_answers_from_the_stored_verification_until_something_changes
);

/// A stored result that found problems is served as such: a stored verification never
/// turns a failing check into a passing one.
async fn a_stored_failure_stays_a_failure(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "head").await;
    let fx = Fx::new(db).await;
    let tenant = fx.tenant().await;
    let other = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    fx.flow(tenant, None, Some(session), None, 1).await;
    let foreign = fx.flow(other, None, None, None, 2).await;
    let asset = fx.asset(tenant, Some(session)).await;
    // A link across tenants, written as foreign SQL would (flow_id only).
    fx.sql(&format!(
        "UPDATE assets SET flow_id = '{foreign}' WHERE id = '{asset}'"
    ))
    .await;
    let first = readiness(&fx.db).await.unwrap();
    assert!(!first.is_ready());
    let second = readiness(&fx.db).await.unwrap();
    assert_eq!(second.checks.from, "stored", "{:?}", second.checks);
    assert!(!second.is_ready(), "the stored failure was lost");
    assert_eq!(first.integrity_problems, second.integrity_problems);
    assert_eq!(first.backfill_pending, second.backfill_pending);
}
both_engines!(
    a_stored_failure_stays_a_failure,
    a_stored_failure_stays_a_failure
);

/// Readiness gates the links, so its full check runs the link checks alone: it never
/// recomputes the fingerprints or compares the write ledger (which prove legacy values, and
/// while the application writes cost several times the link checks). With the fingerprints
/// gone, `verify` cannot run, and readiness still checks and stores the links.
async fn readiness_checks_the_links_without_the_fingerprints(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "head").await;
    let fx = Fx::new(db).await;
    let tenant = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    fx.flow(tenant, None, Some(session), None, 1).await;
    fx.asset(tenant, Some(session)).await;
    fx.sql("DELETE FROM flowkey_fingerprints").await;
    assert!(
        verify_and_record(&fx.db).await.is_err(),
        "verify needs them"
    );

    let checked = readiness(&fx.db).await.unwrap();
    stale_because(&checked, "no verification stored yet");
    assert!(checked.is_ready(), "{:?}", checked.reasons());
    assert!(from_storage(&fx).await.is_ready());
}
both_engines!(
    readiness_checks_the_links_without_the_fingerprints,
    readiness_checks_the_links_without_the_fingerprints
);

fn stale_reason(stored: Stored) -> String {
    match stored {
        Stored::Stale(reason) => reason,
        Stored::Fresh(fresh) => panic!("still standing: {fresh:?}"),
    }
}

/// Each reason a stored verification stops standing, read directly (`last_standing`): none
/// stored in the table yet, older than the caller's maximum age, unreadable (written by
/// another build), and stored below the legacy-write log's revision (no log to see writes
/// since). `verify --online` stores its result like `verify`.
async fn every_reason_a_stored_verification_stops_standing_is_named(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "flow_constraints").await;
    let fx = Fx::new(db).await;
    let long = Duration::from_secs(3600);

    // Below the legacy-write log: stored, but nothing can tell writes since.
    verify_and_record(&fx.db).await.unwrap();
    let reason = stale_reason(last_standing(&fx.db, long).await.unwrap());
    assert!(
        reason.contains("no legacy-write log at this revision"),
        "{reason}"
    );

    upgrade_to(&fx.db, "head").await;
    fx.sql("DELETE FROM flowkey_verifications").await;
    let reason = stale_reason(last_standing(&fx.db, long).await.unwrap());
    assert_eq!(reason, "no verification stored yet");

    let report = verify_and_record_online(&fx.db).await.unwrap();
    assert!(report.is_ok(), "{}", report.summary());
    assert!(matches!(
        last_standing(&fx.db, long).await.unwrap(),
        Stored::Fresh(_)
    ));
    let reason = stale_reason(last_standing(&fx.db, Duration::ZERO).await.unwrap());
    assert!(reason.contains("more than 0 s"), "{reason}");

    fx.sql("UPDATE flowkey_verifications SET report = 'not json'")
        .await;
    let reason = stale_reason(last_standing(&fx.db, long).await.unwrap());
    assert!(reason.contains("unreadable"), "{reason}");
    // Readiness then checks again and stores a readable result.
    let checked = readiness(&fx.db).await.unwrap();
    assert_eq!(checked.checks.from, "checked", "{:?}", checked.checks);
    assert!(matches!(
        last_standing(&fx.db, long).await.unwrap(),
        Stored::Fresh(_)
    ));
}
both_engines!(
    every_reason_a_stored_verification_stops_standing_is_named,
    every_reason_a_stored_verification_stops_standing_is_named
);
