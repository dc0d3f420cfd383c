//! Checking the promises from the outside, after the storm: what the client
//! saw against what the API reports. Pure, so every kind of violation has a
//! test that feeds it a crafted result.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// One answer the client saw.
#[derive(Debug, Clone)]
pub struct Observed {
    pub user: usize,
    pub key: String,
    /// HTTP status, or `None` when the request got no answer at all.
    pub status: Option<u16>,
    /// `(coupon id, seq)` of a 201.
    pub coupon: Option<(String, u32)>,
}

/// One coupon in a user's wallet, read after the storm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub id: String,
    pub seq: u32,
}

/// Everything the verifier needs.
#[derive(Debug)]
pub struct Evidence<'a> {
    pub stock: u64,
    pub limit: u32,
    /// min(stock, what the users could legally take).
    pub expected_issued: u64,
    /// The campaign's `issued_count`.
    pub campaign_issued: u64,
    pub observed: &'a [Observed],
    /// Per user index, the campaign's coupons in their wallet.
    pub wallets: &'a [Vec<Held>],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Violation {
    /// Promise 1.
    OverIssue { issued: u64, stock: u64 },
    /// Promise 5 (or a lost coupon): fewer issued than users could legally take.
    UnderIssue { issued: u64, expected: u64 },
    /// The campaign's count disagrees with the wallets.
    CountMismatch {
        campaign_issued: u64,
        in_wallets: u64,
    },
    /// Promise 2.
    LimitExceeded {
        user: usize,
        held: usize,
        limit: u32,
    },
    /// Promise 3: a 201 whose coupon is not in that user's wallet.
    LostIssue { user: usize, coupon: String },
    /// Promise 6: seq values are not exactly 1..=issued.
    SeqNotDense {
        missing: Vec<u32>,
        repeated: Vec<u32>,
    },
    /// Promise 4: one key answered with different coupons.
    ReplayMismatch {
        user: usize,
        key: String,
        coupons: Vec<String>,
    },
}

impl Violation {
    pub fn describe(&self) -> String {
        match self {
            Violation::OverIssue { issued, stock } => {
                format!("over-issue: {issued} coupons issued for a stock of {stock}")
            }
            Violation::UnderIssue { issued, expected } => {
                format!(
                    "under-issue: {issued} coupons issued, but the users could legally take {expected}"
                )
            }
            Violation::CountMismatch {
                campaign_issued,
                in_wallets,
            } => {
                format!(
                    "the campaign says {campaign_issued} issued but the wallets hold {in_wallets}"
                )
            }
            Violation::LimitExceeded { user, held, limit } => {
                format!("user {user} holds {held} coupons, above the limit {limit}")
            }
            Violation::LostIssue { user, coupon } => {
                format!("user {user} was answered 201 with {coupon}, which is not in their wallet")
            }
            Violation::SeqNotDense { missing, repeated } => {
                format!("seq values are not 1..=issued: missing {missing:?}, repeated {repeated:?}")
            }
            Violation::ReplayMismatch { user, key, coupons } => {
                format!("user {user}'s key {key} was answered with different coupons {coupons:?}")
            }
        }
    }
}

fn first_few<T>(mut v: Vec<T>) -> Vec<T> {
    v.truncate(20);
    v
}

pub fn verify(e: &Evidence<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let in_wallets: u64 = e.wallets.iter().map(|w| w.len() as u64).sum();
    let issued = in_wallets.max(e.campaign_issued);
    if issued > e.stock {
        violations.push(Violation::OverIssue {
            issued,
            stock: e.stock,
        });
    } else if issued < e.expected_issued {
        violations.push(Violation::UnderIssue {
            issued,
            expected: e.expected_issued,
        });
    }
    if e.campaign_issued != in_wallets {
        violations.push(Violation::CountMismatch {
            campaign_issued: e.campaign_issued,
            in_wallets,
        });
    }
    for (user, wallet) in e.wallets.iter().enumerate() {
        if wallet.len() > e.limit as usize {
            violations.push(Violation::LimitExceeded {
                user,
                held: wallet.len(),
                limit: e.limit,
            });
        }
    }
    let held: HashSet<(usize, &str)> = e
        .wallets
        .iter()
        .enumerate()
        .flat_map(|(u, w)| w.iter().map(move |c| (u, c.id.as_str())))
        .collect();
    let mut by_key: BTreeMap<(usize, &str), HashSet<&str>> = BTreeMap::new();
    for o in e.observed {
        if let (Some(201), Some((id, _))) = (o.status, &o.coupon) {
            if !held.contains(&(o.user, id.as_str())) {
                violations.push(Violation::LostIssue {
                    user: o.user,
                    coupon: id.clone(),
                });
            }
            by_key
                .entry((o.user, o.key.as_str()))
                .or_default()
                .insert(id);
        }
    }
    for ((user, key), coupons) in by_key {
        if coupons.len() > 1 {
            let mut coupons: Vec<String> = coupons.into_iter().map(str::to_owned).collect();
            coupons.sort();
            violations.push(Violation::ReplayMismatch {
                user,
                key: key.to_owned(),
                coupons,
            });
        }
    }
    let mut seen: HashMap<u32, u32> = HashMap::new();
    for c in e.wallets.iter().flatten() {
        *seen.entry(c.seq).or_default() += 1;
    }
    let missing: Vec<u32> = (1..=in_wallets as u32)
        .filter(|s| !seen.contains_key(s))
        .collect();
    let mut repeated: Vec<u32> = seen
        .iter()
        .filter(|&(_, &n)| n > 1)
        .map(|(&s, _)| s)
        .collect();
    repeated.sort_unstable();
    if !missing.is_empty() || !repeated.is_empty() {
        violations.push(Violation::SeqNotDense {
            missing: first_few(missing),
            repeated: first_few(repeated),
        });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(id: &str, seq: u32) -> Held {
        Held { id: id.into(), seq }
    }

    fn issued(user: usize, key: &str, id: &str, seq: u32) -> Observed {
        Observed {
            user,
            key: key.into(),
            status: Some(201),
            coupon: Some((id.into(), seq)),
        }
    }

    /// Two users, stock 3, limit 2: user 0 holds a and b (b via a replay), user 1 holds c.
    fn clean() -> (Vec<Observed>, Vec<Vec<Held>>) {
        let observed = vec![
            issued(0, "k0", "a", 1),
            issued(0, "k1", "b", 3),
            issued(0, "k1", "b", 3),
            issued(1, "k2", "c", 2),
            Observed {
                user: 1,
                key: "k3".into(),
                status: Some(409),
                coupon: None,
            },
        ];
        let wallets = vec![vec![held("a", 1), held("b", 3)], vec![held("c", 2)]];
        (observed, wallets)
    }

    fn evidence<'a>(observed: &'a [Observed], wallets: &'a [Vec<Held>]) -> Evidence<'a> {
        Evidence {
            stock: 3,
            limit: 2,
            expected_issued: 3,
            campaign_issued: wallets.iter().map(|w| w.len() as u64).sum(),
            observed,
            wallets,
        }
    }

    #[test]
    fn a_clean_run_has_no_violations() {
        let (o, w) = clean();
        assert_eq!(verify(&evidence(&o, &w)), vec![]);
    }

    #[test]
    fn an_over_issue_is_caught() {
        let (o, mut w) = clean();
        w[1].push(held("d", 4));
        let v = verify(&evidence(&o, &w));
        assert!(
            v.contains(&Violation::OverIssue {
                issued: 4,
                stock: 3
            }),
            "{v:?}"
        );
    }

    #[test]
    fn an_under_issue_is_caught() {
        let (o, w) = clean();
        let v = verify(&Evidence {
            expected_issued: 5,
            stock: 5,
            ..evidence(&o, &w)
        });
        assert!(
            v.contains(&Violation::UnderIssue {
                issued: 3,
                expected: 5
            }),
            "{v:?}"
        );
    }

    #[test]
    fn a_limit_breach_is_caught() {
        let (o, w) = clean();
        let v = verify(&Evidence {
            limit: 1,
            ..evidence(&o, &w)
        });
        assert!(
            v.contains(&Violation::LimitExceeded {
                user: 0,
                held: 2,
                limit: 1
            }),
            "{v:?}"
        );
    }

    #[test]
    fn a_lost_201_is_caught() {
        let (mut o, w) = clean();
        o.push(issued(1, "k9", "ghost", 9));
        let v = verify(&evidence(&o, &w));
        assert!(
            v.contains(&Violation::LostIssue {
                user: 1,
                coupon: "ghost".into()
            }),
            "{v:?}"
        );
    }

    #[test]
    fn a_201_in_somebody_elses_wallet_is_lost_for_its_user() {
        let (mut o, w) = clean();
        o.push(issued(1, "k8", "a", 1));
        let v = verify(&evidence(&o, &w));
        assert!(
            v.contains(&Violation::LostIssue {
                user: 1,
                coupon: "a".into()
            }),
            "{v:?}"
        );
    }

    #[test]
    fn gaps_and_repeats_in_seq_are_caught() {
        let (o, mut w) = clean();
        w[1][0].seq = 1;
        let v = verify(&evidence(&o, &w));
        assert!(
            v.contains(&Violation::SeqNotDense {
                missing: vec![2],
                repeated: vec![1]
            }),
            "{v:?}"
        );
    }

    #[test]
    fn one_key_with_two_coupons_is_caught() {
        let (mut o, w) = clean();
        o.push(issued(0, "k0", "b", 3));
        let v = verify(&evidence(&o, &w));
        assert!(
            v.contains(&Violation::ReplayMismatch {
                user: 0,
                key: "k0".into(),
                coupons: vec!["a".into(), "b".into()]
            }),
            "{v:?}"
        );
    }

    #[test]
    fn a_campaign_count_that_disagrees_with_the_wallets_is_caught() {
        let (o, w) = clean();
        let v = verify(&Evidence {
            campaign_issued: 2,
            ..evidence(&o, &w)
        });
        assert!(
            v.contains(&Violation::CountMismatch {
                campaign_issued: 2,
                in_wallets: 3
            }),
            "{v:?}"
        );
    }
}
