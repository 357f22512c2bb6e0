//! The legacy oddities of shared/legacy/README.md, each declared once: its name, its CLI flag,
//! its help text, its default rate and what it does. Everything else is derived from the one
//! list in [`declare_oddities!`]: the [`PerOddity`] struct (a rate, or the generator's quota,
//! per oddity), the defaults, [`ODDITIES`] (what the CLI builds its flags from and the summary
//! prints), and the per-name access validation and the CLI need.
//!
//! A macro rather than a plain table because the generator, the tests and library callers
//! reach each oddity by a field name (`oddities.child_tenant_null`), which only code
//! generation can give from the same list a table is built from.

/// What is known of one oddity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OdditySpec {
    /// The field name (`snake_case`), as in [`PerOddity`], errors and the summary.
    pub name: &'static str,
    /// The `flowkey seed` flag that sets its rate.
    pub flag: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// The rate of [`Oddities::default`].
    pub default_rate: f64,
    /// What it puts in the data, and which candidates it applies to.
    pub doc: &'static str,
}

macro_rules! declare_oddities {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident {
            flag: $flag:literal,
            help: $help:literal,
            default: $default:literal $(,)?
        }
    )+) => {
        /// One value per oddity: its rate ([`Oddities`]), or anything else kept per oddity.
        /// Fields are in declaration order, which is also the order of [`ODDITIES`].
        #[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
        pub struct PerOddity<T> {
            $( $(#[doc = $doc])+ pub $name: T, )+
        }

        /// Every oddity, in declaration order.
        pub const ODDITIES: [OdditySpec; declare_oddities!(@count $($name)+)] = [
            $( OdditySpec {
                name: stringify!($name),
                flag: $flag,
                help: $help,
                default_rate: $default,
                doc: concat!($($doc, "\n"),+),
            }, )+
        ];

        impl<T> PerOddity<T> {
            /// The same value for every oddity.
            pub fn splat(value: T) -> Self
            where
                T: Copy,
            {
                Self { $( $name: value, )+ }
            }

            /// The value of each oddity, transformed.
            pub fn map<U>(self, mut transform: impl FnMut(T) -> U) -> PerOddity<U> {
                PerOddity { $( $name: transform(self.$name), )+ }
            }

            /// Each spec with its value, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static OdditySpec, &T)> {
                ODDITIES.iter().zip([$( &self.$name, )+])
            }

            /// Each spec with its value, mutable, in declaration order.
            pub fn iter_mut(&mut self) -> impl Iterator<Item = (&'static OdditySpec, &mut T)> {
                ODDITIES.iter().zip([$( &mut self.$name, )+])
            }
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + declare_oddities!(@count $($tail)*) };
}

declare_oddities! {
    /// Import slots where the import has a NULL `session_id` (and no session is created); its
    /// flow reaches it only through `discovery_flows.data_import_id`.
    import_without_session {
        flag: "rate-import-without-session",
        help: "Imports with a NULL session, reached only by discovery_flows.data_import_id",
        default: 0.05,
    }
    /// Import slots whose session has data but no flow at all.
    session_without_flow {
        flag: "rate-session-without-flow",
        help: "Sessions with data but no flow",
        default: 0.05,
    }
    /// Import slots whose flow's `import_session_id` holds the `data_imports.id`.
    flow_import_session_is_import_id {
        flag: "rate-flow-import-session-is-import-id",
        help: "Flows whose import_session_id holds a data_imports.id",
        default: 0.2,
    }
    /// Import slots whose flow's `import_session_id` points nowhere.
    flow_import_session_dangling {
        flag: "rate-flow-import-session-dangling",
        help: "Flows whose import_session_id points nowhere",
        default: 0.05,
    }
    /// Flows of a real tenant's data created under the placeholder tenant
    /// `11111111-1111-1111-1111-111111111111`.
    flow_under_placeholder_tenant {
        flag: "rate-flow-under-placeholder-tenant",
        help: "Flows under the placeholder tenant 11111111-1111-1111-1111-111111111111",
        default: 0.05,
    }
    /// Flows whose `flow_id` is their own session's id.
    flow_id_is_session_id {
        flag: "rate-flow-id-is-session-id",
        help: "Flows whose flow_id is their session's id",
        default: 0.05,
    }
    /// Sessions whose id is also the `flow_id` of a flow of ANOTHER tenant (needs 2 tenants).
    session_id_is_foreign_flow_id {
        flag: "rate-session-id-is-foreign-flow-id",
        help: "Sessions whose id is the flow_id of another tenant's flow",
        default: 0.02,
    }
    /// Sessions claimed by one more flow of the same tenant, created later.
    session_claimed_twice {
        flag: "rate-session-claimed-twice",
        help: "Sessions claimed by a second, later flow",
        default: 0.1,
    }
    /// Sessions claimed by one more flow of the same tenant with the SAME `created_at` (the
    /// tie-break by smallest flow id decides).
    session_claimed_twice_same_time {
        flag: "rate-session-claimed-twice-same-time",
        help: "Sessions claimed by a second flow with the same created_at",
        default: 0.05,
    }
    /// Sessions claimed by a flow of ANOTHER tenant (needs 2 tenants).
    session_claimed_by_foreign_flow {
        flag: "rate-session-claimed-by-foreign-flow",
        help: "Sessions claimed by a flow of another tenant",
        default: 0.02,
    }
    /// Import slots with one more flow that has neither session nor import.
    flow_without_session {
        flag: "rate-flow-without-session",
        help: "Extra flows with neither session nor import",
        default: 0.1,
    }
    /// Flows whose `status` holds a phase name instead of a status.
    flow_status_is_phase {
        flag: "rate-flow-status-is-phase",
        help: "Flows whose status is a phase name",
        default: 0.1,
    }
    /// Flows whose `crewai_state_data` embeds `session_id` and/or `original_session_id`.
    flow_state_names_session {
        flag: "rate-flow-state-names-session",
        help: "Flows whose crewai_state_data holds session_id / original_session_id",
        default: 0.3,
    }
    /// Imports whose `import_config` embeds `validation_session_id`.
    import_config_names_session {
        flag: "rate-import-config-names-session",
        help: "Imports whose import_config holds validation_session_id",
        default: 0.3,
    }
    /// Raw records with a NULL `session_id` whose import has one.
    raw_record_without_session {
        flag: "rate-raw-record-without-session",
        help: "Raw records with a NULL session whose import has one",
        default: 0.05,
    }
    /// Child rows (raw records, imports, access log, LLM log) whose tenant columns name
    /// another tenant than their session's (needs 2 tenants).
    child_tenant_mismatch {
        flag: "rate-child-tenant-mismatch",
        help: "Child rows whose tenant columns name another tenant",
        default: 0.02,
    }
    /// Child rows (raw records, imports, access log, LLM log) with NULL tenant columns.
    child_tenant_null {
        flag: "rate-child-tenant-null",
        help: "Child rows with NULL tenant columns",
        default: 0.05,
    }
    /// `flow_deletion_audit` rows whose `session_id` names no session.
    deletion_audit_dangling_session {
        flag: "rate-deletion-audit-dangling-session",
        help: "flow_deletion_audit rows naming a session that does not exist",
        default: 0.5,
    }
    /// `llm_usage_logs.session_id` in a form other than the bare id of an existing session:
    /// in turn `disc_session_<uuid>`, `session-<uuid>` in mixed case, an empty string,
    /// garbage, NULL, and a bare UUID that names no session.
    llm_session_id_odd {
        flag: "rate-llm-session-id-odd",
        help: "llm_usage_logs.session_id prefixed, mixed case, empty, garbage, NULL or dangling",
        default: 0.4,
    }
}

/// How often each oddity appears, as a proportion in `[0, 1]` of the candidates it applies to
/// (see each field). Placement is a deterministic quota, not a coin toss: with a rate above
/// zero the first candidate is always odd, so even a tiny run shows every oddity, and over
/// many candidates the proportion is the rate.
///
/// Oddities of one import slot that exclude each other (what a flow's `import_session_id`
/// holds) are tried in field order; a candidate taken by an earlier one is not offered to the
/// later ones.
pub type Oddities = PerOddity<f64>;

impl Default for PerOddity<f64> {
    /// The rates of the declarations.
    fn default() -> Self {
        let mut rates = Self::splat(0.0);
        for (spec, rate) in rates.iter_mut() {
            *rate = spec.default_rate;
        }
        rates
    }
}

impl PerOddity<f64> {
    /// Clean data: no oddity at all.
    pub fn none() -> Self {
        Self::splat(0.0)
    }

    /// Every rate with its field name, for validation and display.
    pub fn rates(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.iter().map(|(spec, rate)| (spec.name, *rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_oddity_has_a_distinct_name_and_flag() {
        let mut names: Vec<&str> = ODDITIES.iter().map(|spec| spec.name).collect();
        let mut flags: Vec<&str> = ODDITIES.iter().map(|spec| spec.flag).collect();
        names.sort_unstable();
        names.dedup();
        flags.sort_unstable();
        flags.dedup();
        assert_eq!(names.len(), ODDITIES.len());
        assert_eq!(flags.len(), ODDITIES.len());
        for spec in &ODDITIES {
            assert_eq!(spec.flag, format!("rate-{}", spec.name.replace('_', "-")));
            assert!((0.0..=1.0).contains(&spec.default_rate), "{}", spec.name);
            assert!(!spec.doc.is_empty() && !spec.help.is_empty());
        }
    }

    #[test]
    fn fields_and_specs_are_in_the_same_order() {
        let mut rates = Oddities::none();
        rates.child_tenant_null = 0.5;
        let (spec, rate) = rates
            .iter()
            .find(|(_, rate)| **rate > 0.0)
            .expect("one rate set");
        assert_eq!(spec.name, "child_tenant_null");
        assert!((rate - 0.5).abs() < f64::EPSILON);
        assert_eq!(Oddities::default().llm_session_id_odd, 0.4);
        assert_eq!(Oddities::default().rates().count(), 19);
    }
}
