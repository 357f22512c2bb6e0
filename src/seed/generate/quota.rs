//! Where oddities go: one quota per oddity, placing it on a fixed proportion of candidates.

use crate::seed::{Oddities, PerOddity};

/// A quota places an oddity on a proportion `rate` of its candidates: the first candidate
/// asked is always taken (when the rate is above zero), then one every `1 / rate`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quota {
    pub(super) rate: f64,
    pub(super) credit: f64,
}

impl Quota {
    pub fn new(rate: f64) -> Self {
        Self { rate, credit: 1.0 }
    }

    pub fn take(&mut self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let hit = self.credit >= 1.0;
        if hit {
            self.credit -= 1.0;
        }
        self.credit += self.rate;
        hit
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum ChildTable {
    RawRecords,
    Imports,
    AccessLog,
    LlmLog,
}

/// One quota per oddity; the tenant column oddities (`child_tenant_*`) draw from one pair per
/// child table instead, so that a rare table is not starved by a frequent one.
pub(super) struct Quotas {
    pub each: PerOddity<Quota>,
    /// (mismatch, null) per child table, in [`ChildTable`] order.
    pub(super) child_tenant: [(Quota, Quota); 4],
}

impl Quotas {
    pub fn new(rates: &Oddities) -> Self {
        let child = (
            Quota::new(rates.child_tenant_mismatch),
            Quota::new(rates.child_tenant_null),
        );
        Self {
            each: rates.map(Quota::new),
            child_tenant: [child; 4],
        }
    }

    pub fn child(&mut self, table: ChildTable) -> (&mut Quota, &mut Quota) {
        let (mismatch, null) = &mut self.child_tenant[table as usize];
        (mismatch, null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn a_quota_takes_the_first_candidate_then_its_proportion() {
        let mut quota = Quota::new(0.25);
        let taken: Vec<bool> = (0..8).map(|_| quota.take()).collect();
        assert_eq!(
            taken,
            [true, false, false, false, true, false, false, false]
        );
        let mut never = Quota::new(0.0);
        assert!((0..100).all(|_| !never.take()));
        let mut always = Quota::new(1.0);
        assert!((0..100).all(|_| always.take()));
    }
}
