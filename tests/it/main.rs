//! The integration suite: one binary, every database test on SQLite and on PostgreSQL, each
//! on its own fresh database (see `harness`).

mod cli;
mod cli_flow;
mod compat;
mod coverage_offline;
mod coverage_refusals;
mod db_connect;
mod flow_fixtures;
mod flow_migration;
mod flow_runner;
mod flow_support;
mod harness;
mod http_admin;
mod http_csv_upload;
mod http_flags;
mod http_openapi;
mod http_ops;
mod http_v1;
mod http_v3;
mod migrate_runner;
mod private_postgres;
mod reliability_concurrency;
mod reliability_crash;
mod reliability_database_gone;
mod reliability_hostile_migration;
mod reliability_pg_restart;
mod reliability_service;
mod reliability_support;
mod reliability_upgrade_while_serving;
mod seed;
mod service_probe;
mod service_support;
mod store_imports;
mod store_service_state;
