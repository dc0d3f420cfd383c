//! The time sale's promises, checked from the outside: the stock the sale
//! showed during the run, what the buyers were answered, and what they read
//! back at the end (their orders, points and coupons), after every unpaid
//! order's payment time ran out. Pure, so each violation has a test that
//! feeds it a crafted run.
//!
//! The six promises, numbered as in the report:
//! 1. sold ≤ stock at every instant, and sold + remaining = stock;
//! 2. paid ≤ stock, and every payment answered 200 is paid at the end;
//! 3. every unit an order gave back (expired, cancelled) is sold again or
//!    still in stock: units held + remaining = stock, and the stock gave
//!    back exactly one unit per ended order;
//! 4. nobody holds more than the per-user limit (pending + paid);
//! 5. every order answered 201 exists, no order exists that no 201
//!    answered, and seqs are ranks of the stock: each in 1..=stock, none
//!    held by two orders at once, none skipped. (Not "the held seqs are
//!    exactly 1..=held": a unit given back frees its seq, the lowest free
//!    one goes to the next buyer, and until one comes the held seqs have a
//!    gap there — as they do at the end when unpaid units stay in stock.)
//! 6. every coupon and points hold resolved once: a paid order's coupon is
//!    used and its points spent, an ended order's are back.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use super::violation::SaleViolation;

/// One read of the sale's live numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StockPoll {
    /// After the opening (negative: before it).
    pub at_ms: f64,
    pub sold: u64,
    pub remaining: u64,
    pub total: u64,
}

/// An order as a buyer was answered (201).
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub user: usize,
    pub key: String,
    pub order: String,
    pub seq: u32,
}

/// An order of the sale as its buyer reads it at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRead {
    pub id: String,
    pub seq: u32,
    pub status: String,
    pub points_used: i64,
    pub coupon_id: Option<String>,
    /// Still pending although its payment time ran out more than 5 s ago.
    pub overdue: bool,
}

impl OrderRead {
    /// Pending or paid (or refunded): the order holds its unit.
    fn holds(&self) -> bool {
        matches!(
            self.status.as_str(),
            "pending_payment" | "paid" | "refunded"
        )
    }
}

/// A points buyer's balance at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct PointsRead {
    pub user: usize,
    pub earned: i64,
    pub balance: i64,
    pub held: i64,
}

/// A coupon buyer's coupon at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct CouponRead {
    pub user: usize,
    pub coupon: String,
    pub status: String,
    pub order_id: Option<String>,
}

#[derive(Debug)]
pub struct SaleEvidence<'a> {
    pub stock: u64,
    pub limit: u32,
    /// Every read of the sale, the last one after the run settled.
    pub polls: &'a [StockPoll],
    pub answered: &'a [Answered],
    /// `(user, order)` of every payment answered 200.
    pub paid: &'a [(usize, String)],
    /// Users with an order request that got no answer (it may have placed one).
    pub uncertain: &'a HashSet<usize>,
    /// Per user index, their orders of this sale.
    pub orders: &'a [Vec<OrderRead>],
    /// Per user: the points each of their orders asked for (None: no points).
    pub points_asked: &'a [Option<i64>],
    /// Per user: the coupon they ordered with, if any.
    pub coupon_asked: &'a [Option<String>],
    pub points: &'a [PointsRead],
    pub coupons: &'a [CouponRead],
}

/// What the run did, as read back at the end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Orders that exist (each took a unit once).
    pub placed: u64,
    pub held: u64,
    pub paid: u64,
    pub pending: u64,
    pub expired: u64,
    pub cancelled: u64,
    /// Units the stock took back: placed − sold at the end.
    pub returned: i64,
    /// Orders that got a unit another order had given back (seq reused).
    pub resold: u64,
    pub remaining: u64,
    pub polls: u64,
    pub max_sold: u64,
    pub points_buyers: u64,
    pub coupon_buyers: u64,
}

fn first_few<T>(mut v: Vec<T>) -> Vec<T> {
    v.truncate(20);
    v
}

pub fn verify(e: &SaleEvidence<'_>) -> (Vec<SaleViolation>, Tally) {
    let mut v = Vec::new();
    let mut t = Tally {
        polls: e.polls.len() as u64,
        points_buyers: e.points.len() as u64,
        coupon_buyers: e.coupons.len() as u64,
        ..Tally::default()
    };

    // 1. The stock at every read.
    for p in e.polls {
        let at_ms = p.at_ms.round() as i64;
        t.max_sold = t.max_sold.max(p.sold);
        if p.sold > e.stock {
            v.push(SaleViolation::Oversold {
                at_ms,
                sold: p.sold,
                stock: e.stock,
            });
        }
        if p.sold + p.remaining != e.stock || p.total != e.stock {
            v.push(SaleViolation::StockDrift {
                at_ms,
                sold: p.sold,
                remaining: p.remaining,
                total: p.total,
            });
        }
    }
    let end = e.polls.last().copied().unwrap_or(StockPoll {
        at_ms: 0.0,
        sold: 0,
        remaining: e.stock,
        total: e.stock,
    });

    // What the buyers hold at the end.
    let mut by_id: HashMap<&str, (usize, &OrderRead)> = HashMap::new();
    let mut seqs: HashMap<u32, u32> = HashMap::new();
    let mut all_seqs = HashSet::new();
    for (user, orders) in e.orders.iter().enumerate() {
        let mut held = 0;
        for o in orders {
            by_id.insert(o.id.as_str(), (user, o));
            t.placed += 1;
            all_seqs.insert(o.seq);
            if o.seq == 0 || u64::from(o.seq) > e.stock {
                v.push(SaleViolation::SeqOutOfRange {
                    order: o.id.clone(),
                    seq: o.seq,
                    stock: e.stock,
                });
            }
            match o.status.as_str() {
                "paid" => t.paid += 1,
                "pending_payment" => t.pending += 1,
                "expired" => t.expired += 1,
                "cancelled" => t.cancelled += 1,
                _ => {}
            }
            if o.holds() {
                held += 1;
                *seqs.entry(o.seq).or_default() += 1;
            }
            if o.overdue && o.status == "pending_payment" {
                v.push(SaleViolation::NotExpired {
                    user,
                    order: o.id.clone(),
                });
            }
            let points = e.points_asked.get(user).copied().flatten().unwrap_or(0);
            let coupon = e.coupon_asked.get(user).cloned().flatten();
            if o.points_used != points || o.coupon_id != coupon {
                v.push(SaleViolation::ExtrasMismatch {
                    user,
                    order: o.id.clone(),
                });
            }
        }
        t.held += held as u64;
        // 4. The per-user limit.
        if held > e.limit as usize {
            v.push(SaleViolation::LimitExceeded {
                user,
                held,
                limit: e.limit,
            });
        }
    }
    t.remaining = end.remaining;
    t.returned = t.placed as i64 - end.sold as i64;
    t.resold = t.placed - all_seqs.len() as u64;

    // 2. Payments.
    if t.paid > e.stock {
        v.push(SaleViolation::OverPaid {
            paid: t.paid,
            stock: e.stock,
        });
    }
    for (user, order) in e.paid {
        if !by_id
            .get(order.as_str())
            .is_some_and(|(u, o)| u == user && o.status == "paid")
        {
            v.push(SaleViolation::PaymentLost {
                user: *user,
                order: order.clone(),
            });
        }
    }

    // 3. Units given back.
    if t.held + end.remaining != e.stock {
        v.push(SaleViolation::UnitsLost {
            held: t.held,
            remaining: end.remaining,
            stock: e.stock,
        });
    }
    let ended = t.expired + t.cancelled;
    if t.returned != ended as i64 {
        v.push(SaleViolation::ReturnsMismatch {
            ended,
            returned: t.returned,
        });
    }

    // 5. Every answer exists, nothing else does, seqs are dense.
    let mut by_key: BTreeMap<(usize, &str), HashSet<&str>> = BTreeMap::new();
    let mut answered_ids = HashSet::new();
    for a in e.answered {
        answered_ids.insert(a.order.as_str());
        by_key
            .entry((a.user, a.key.as_str()))
            .or_default()
            .insert(&a.order);
        match by_id.get(a.order.as_str()) {
            Some((u, o)) if *u == a.user => {
                if o.seq != a.seq {
                    v.push(SaleViolation::SeqChanged {
                        order: a.order.clone(),
                        answered: a.seq,
                        read: o.seq,
                    });
                }
            }
            _ => v.push(SaleViolation::LostOrder {
                user: a.user,
                order: a.order.clone(),
            }),
        }
    }
    for ((user, key), orders) in by_key {
        if orders.len() > 1 {
            let mut orders: Vec<String> = orders.into_iter().map(str::to_owned).collect();
            orders.sort();
            v.push(SaleViolation::KeyTwoOrders {
                user,
                key: key.to_owned(),
                orders,
            });
        }
    }
    for (user, orders) in e.orders.iter().enumerate() {
        for o in orders {
            if !answered_ids.contains(o.id.as_str()) && !e.uncertain.contains(&user) {
                v.push(SaleViolation::PhantomOrder {
                    user,
                    order: o.id.clone(),
                });
            }
        }
    }
    let highest = all_seqs.iter().copied().max().unwrap_or(0);
    let missing: Vec<u32> = (1..highest).filter(|s| !all_seqs.contains(s)).collect();
    let mut repeated: Vec<u32> = seqs
        .iter()
        .filter(|&(_, &n)| n > 1)
        .map(|(&s, _)| s)
        .collect();
    repeated.sort_unstable();
    if !missing.is_empty() || !repeated.is_empty() {
        v.push(SaleViolation::SeqNotDense {
            missing: first_few(missing),
            repeated: first_few(repeated),
        });
    }

    // 6. Points and coupons.
    for p in e.points {
        let orders = e.orders.get(p.user).map_or(&[][..], Vec::as_slice);
        let sum = |status: &str| -> i64 {
            orders
                .iter()
                .filter(|o| o.status == status)
                .map(|o| o.points_used)
                .sum()
        };
        let expected_held = sum("pending_payment");
        let expected_balance = p.earned - sum("paid") - expected_held;
        if (p.balance, p.held) != (expected_balance, expected_held) {
            v.push(SaleViolation::PointsDrift {
                user: p.user,
                balance: p.balance,
                expected_balance,
                held: p.held,
                expected_held,
            });
        }
    }
    for c in e.coupons {
        let orders = e.orders.get(c.user).map_or(&[][..], Vec::as_slice);
        let with = |status: &str| {
            orders
                .iter()
                .find(|o| o.status == status && o.coupon_id.as_deref() == Some(c.coupon.as_str()))
        };
        let (expected, order) = match (with("paid"), with("pending_payment")) {
            (Some(o), _) => ("used", Some(o.id.clone())),
            (None, Some(o)) => ("reserved", Some(o.id.clone())),
            (None, None) => ("available", None),
        };
        let order_matches = order.is_none() || c.order_id == order;
        if c.status != expected || !order_matches {
            v.push(SaleViolation::CouponDrift {
                user: c.user,
                coupon: c.coupon.clone(),
                status: c.status.clone(),
                expected: expected.to_owned(),
            });
        }
    }
    (v, t)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
