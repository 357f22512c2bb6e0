//! The integration suite: one binary, every database test on SQLite and on PostgreSQL, each
//! on its own fresh database (see `support::harness`). Folders group the tests by what they
//! test: `migrate` (the runner and the session→flow migration), `service` (stores and the
//! compatibility service), `http` (the routes), `cli` (the binary), `reliability` (kills,
//! cuts, restarts, races); `support` holds what they share.

// A failed unwrap is a failed test, with the value that failed in its message.
#![allow(clippy::unwrap_used)]

mod cli {
    mod alembic_revision;
    mod bench;
    mod commands;
    mod db_connect;
    mod flow_commands;
}
mod http {
    mod admin;
    mod after_contract;
    mod auth;
    mod csv_upload;
    mod flags;
    mod openapi;
    mod ops;
    mod rbac_platform;
    mod refusals;
    mod several_flows;
    mod shadow_gate;
    mod tenancy;
    mod v1;
    mod v3;
}
mod migrate {
    mod contract;
    mod fingerprint;
    mod flow_migration;
    mod flow_runner;
    mod linking;
    mod live_mapping;
    mod offline_script;
    mod offline_sql;
    mod online;
    mod readiness;
    mod refusals;
    mod runner;
    mod seed;
    mod write_ledger;
}
mod platform {
    mod discovery;
    mod extras_survive;
    mod lifecycle;
    mod refusals;
}
mod reliability {
    pub mod concurrency;
    mod crash;
    mod database_gone;
    mod hostile_migration;
    mod instances;
    // Faults are armed in the binary, which reads FAILPOINTS only when built with the feature.
    #[cfg(feature = "failpoints")]
    mod fault_paths;
    #[cfg(feature = "failpoints")]
    mod injected_faults;
    mod pg_restart;
    mod pgbouncer;
    pub mod service;
    mod standby;
    mod throttle;
    mod upgrade_while_serving;
}
mod service {
    mod compat;
    mod db_errors;
    mod store_imports;
    mod store_service_state;
}
mod tidy;
mod support {
    pub mod auth_support;
    pub mod flow_fixtures;
    pub mod flow_support;
    pub mod harness;
    pub mod pgbouncer;
    pub mod platform;
    pub mod private_postgres;
    pub mod reliability_support;
    pub mod served;
    pub mod service_probe;
    pub mod service_support;
}
