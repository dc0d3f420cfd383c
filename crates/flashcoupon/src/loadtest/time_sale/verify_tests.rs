//! Each promise of the time sale broken on purpose in a crafted run.

use super::*;

fn poll(at_ms: f64, sold: u64, remaining: u64) -> StockPoll {
    StockPoll {
        at_ms,
        sold,
        remaining,
        total: 3,
    }
}

fn order(id: &str, seq: u32, status: &str) -> OrderRead {
    OrderRead {
        id: id.into(),
        seq,
        status: status.into(),
        points_used: 0,
        coupon_id: None,
        overdue: false,
    }
}

fn answered(user: usize, key: &str, order: &str, seq: u32) -> Answered {
    Answered {
        user,
        key: key.into(),
        order: order.into(),
        seq,
    }
}

fn points(user: usize, balance: i64) -> PointsRead {
    PointsRead {
        user,
        earned: 5_000,
        balance,
        held: 0,
    }
}

fn coupon(user: usize, id: &str, status: &str, order: Option<&str>) -> CouponRead {
    CouponRead {
        user,
        coupon: id.into(),
        status: status.into(),
        order_id: order.map(str::to_owned),
    }
}

/// Stock 3, limit 1. User 0 pays order a (seq 1) with 1,000 points; user 1
/// orders b (seq 2) with coupon c1 and lets it expire; user 2 then takes
/// that unit as c (seq 2 again) with coupon c2 and pays; user 3 (points)
/// never got a unit. One unit is left.
#[derive(Debug, Clone)]
struct Run {
    polls: Vec<StockPoll>,
    answered: Vec<Answered>,
    paid: Vec<(usize, String)>,
    uncertain: HashSet<usize>,
    orders: Vec<Vec<OrderRead>>,
    points_asked: Vec<Option<i64>>,
    coupon_asked: Vec<Option<String>>,
    points: Vec<PointsRead>,
    coupons: Vec<CouponRead>,
}

fn clean() -> Run {
    let a = OrderRead {
        points_used: 1_000,
        ..order("a", 1, "paid")
    };
    let b = OrderRead {
        coupon_id: Some("c1".into()),
        ..order("b", 2, "expired")
    };
    let c = OrderRead {
        coupon_id: Some("c2".into()),
        ..order("c", 2, "paid")
    };
    Run {
        polls: vec![
            poll(-20.0, 0, 3),
            poll(10.0, 2, 1),
            poll(3_500.0, 1, 2),
            poll(3_600.0, 2, 1),
            poll(9_000.0, 2, 1),
        ],
        answered: vec![
            answered(0, "k0", "a", 1),
            answered(1, "k1", "b", 2),
            answered(2, "k2", "c", 2),
        ],
        paid: vec![(0, "a".into()), (2, "c".into())],
        uncertain: HashSet::new(),
        orders: vec![vec![a], vec![b], vec![c], vec![]],
        points_asked: vec![Some(1_000), None, None, Some(1_000)],
        coupon_asked: vec![None, Some("c1".into()), Some("c2".into()), None],
        points: vec![points(0, 4_000), points(3, 5_000)],
        coupons: vec![
            coupon(1, "c1", "available", None),
            coupon(2, "c2", "used", Some("c")),
        ],
    }
}

fn check(r: &Run) -> (Vec<SaleViolation>, Tally) {
    verify(&SaleEvidence {
        stock: 3,
        limit: 1,
        polls: &r.polls,
        answered: &r.answered,
        paid: &r.paid,
        uncertain: &r.uncertain,
        orders: &r.orders,
        points_asked: &r.points_asked,
        coupon_asked: &r.coupon_asked,
        points: &r.points,
        coupons: &r.coupons,
    })
}

fn violations(r: &Run) -> Vec<SaleViolation> {
    check(r).0
}

#[test]
fn a_clean_run_keeps_every_promise_and_counts_the_unit_sold_again() {
    let (v, t) = check(&clean());
    assert_eq!(v, vec![]);
    assert_eq!(
        t,
        Tally {
            placed: 3,
            held: 2,
            paid: 2,
            pending: 0,
            expired: 1,
            cancelled: 0,
            returned: 1,
            resold: 1,
            remaining: 1,
            polls: 5,
            max_sold: 2,
            points_buyers: 2,
            coupon_buyers: 2,
        }
    );
}

#[test]
fn sold_above_the_stock_in_one_poll_is_caught() {
    let mut r = clean();
    r.polls.insert(2, poll(20.0, 4, 0));
    let v = violations(&r);
    assert!(
        v.contains(&SaleViolation::Oversold {
            at_ms: 20,
            sold: 4,
            stock: 3
        }),
        "{v:?}"
    );
    assert!(v.iter().all(|v| v.promise() == 1), "{v:?}");
}

#[test]
fn sold_and_remaining_that_do_not_add_up_to_the_stock_are_caught() {
    let mut r = clean();
    r.polls.insert(2, poll(20.0, 2, 0));
    assert_eq!(
        violations(&r),
        vec![SaleViolation::StockDrift {
            at_ms: 20,
            sold: 2,
            remaining: 0,
            total: 3
        }]
    );
}

#[test]
fn a_payment_answered_but_not_recorded_is_caught() {
    let mut r = clean();
    r.orders[2][0].status = "expired".into();
    r.coupons[1].status = "available".into();
    r.polls.last_mut().unwrap().sold = 1;
    r.polls.last_mut().unwrap().remaining = 2;
    let v = violations(&r);
    assert_eq!(
        v,
        vec![SaleViolation::PaymentLost {
            user: 2,
            order: "c".into()
        }]
    );
    assert_eq!(v[0].promise(), 2);
}

#[test]
fn more_paid_orders_than_stock_are_caught() {
    let r = clean();
    let (v, _) = verify(&SaleEvidence {
        stock: 1,
        limit: 1,
        polls: &[],
        answered: &r.answered,
        paid: &r.paid,
        uncertain: &r.uncertain,
        orders: &r.orders,
        points_asked: &r.points_asked,
        coupon_asked: &r.coupon_asked,
        points: &r.points,
        coupons: &r.coupons,
    });
    assert!(
        v.contains(&SaleViolation::OverPaid { paid: 2, stock: 1 }),
        "{v:?}"
    );
}

#[test]
fn a_unit_an_expired_order_never_gave_back_is_caught() {
    let mut r = clean();
    // The stock still counts b's unit as sold.
    *r.polls.last_mut().unwrap() = poll(9_000.0, 3, 0);
    let v = violations(&r);
    assert!(
        v.contains(&SaleViolation::UnitsLost {
            held: 2,
            remaining: 0,
            stock: 3
        }),
        "{v:?}"
    );
    assert!(
        v.contains(&SaleViolation::ReturnsMismatch {
            ended: 1,
            returned: 0
        }),
        "{v:?}"
    );
}

#[test]
fn an_order_pending_long_after_its_payment_time_is_caught() {
    let mut r = clean();
    r.orders[1][0].status = "pending_payment".into();
    r.orders[1][0].overdue = true;
    let v = violations(&r);
    assert!(
        v.contains(&SaleViolation::NotExpired {
            user: 1,
            order: "b".into()
        }),
        "{v:?}"
    );
}

#[test]
fn a_buyer_above_the_limit_is_caught() {
    let mut r = clean();
    r.orders[0].push(OrderRead {
        points_used: 1_000,
        ..order("d", 3, "paid")
    });
    r.answered.push(answered(0, "k0b", "d", 3));
    let v = violations(&r);
    assert!(
        v.contains(&SaleViolation::LimitExceeded {
            user: 0,
            held: 2,
            limit: 1
        }),
        "{v:?}"
    );
}

#[test]
fn a_201_whose_order_is_missing_is_caught() {
    let mut r = clean();
    r.answered.push(answered(3, "k3", "ghost", 3));
    assert_eq!(
        violations(&r),
        vec![SaleViolation::LostOrder {
            user: 3,
            order: "ghost".into()
        }]
    );
}

#[test]
fn an_order_no_answer_gave_is_caught_unless_a_request_went_unanswered() {
    let mut r = clean();
    r.orders[1].push(OrderRead {
        coupon_id: Some("c1".into()),
        ..order("e", 2, "expired")
    });
    // The stock took e's unit back too.
    *r.polls.last_mut().unwrap() = poll(9_000.0, 2, 1);
    assert_eq!(
        violations(&r),
        vec![SaleViolation::PhantomOrder {
            user: 1,
            order: "e".into()
        }]
    );
    r.uncertain.insert(1);
    assert_eq!(violations(&r), vec![]);
}

#[test]
fn one_key_answered_with_two_orders_is_caught() {
    let mut r = clean();
    r.answered[2].key = "k1".into();
    r.answered[2].user = 1;
    let v = violations(&r);
    assert!(
        v.contains(&SaleViolation::KeyTwoOrders {
            user: 1,
            key: "k1".into(),
            orders: vec!["b".into(), "c".into()]
        }),
        "{v:?}"
    );
}

#[test]
fn a_seq_held_twice_is_caught() {
    let mut r = clean();
    r.orders[2][0].seq = 1;
    let v = violations(&r);
    assert!(
        v.contains(&SaleViolation::SeqNotDense {
            missing: vec![],
            repeated: vec![1]
        }),
        "{v:?}"
    );
    assert!(
        v.contains(&SaleViolation::SeqChanged {
            order: "c".into(),
            answered: 2,
            read: 1
        }),
        "{v:?}"
    );
}

#[test]
fn a_seq_skipped_or_beyond_the_stock_is_caught() {
    let mut r = clean();
    r.orders[1][0].seq = 3;
    r.orders[2][0].seq = 3;
    r.answered[1].seq = 3;
    r.answered[2].seq = 3;
    assert_eq!(
        violations(&r),
        vec![SaleViolation::SeqNotDense {
            missing: vec![2],
            repeated: vec![]
        }]
    );
    r.orders[0][0].seq = 4;
    r.answered[0].seq = 4;
    let v = violations(&r);
    assert!(
        v.contains(&SaleViolation::SeqOutOfRange {
            order: "a".into(),
            seq: 4,
            stock: 3
        }),
        "{v:?}"
    );
}

/// The end of a real run: unpaid units back in stock leave a gap in the
/// held seqs, which breaks nothing.
#[test]
fn a_gap_in_the_held_seqs_left_by_a_unit_in_stock_is_no_violation() {
    let mut r = clean();
    // c took a new seq (3) instead; b's seq 2 is free at the end.
    r.orders[2][0].seq = 3;
    r.answered[2].seq = 3;
    let (v, t) = check(&r);
    assert_eq!(v, vec![]);
    assert_eq!((t.held, t.resold), (2, 0));
}

#[test]
fn points_released_for_a_paid_order_are_caught() {
    let mut r = clean();
    r.points[0].balance = 5_000;
    assert_eq!(
        violations(&r),
        vec![SaleViolation::PointsDrift {
            user: 0,
            balance: 5_000,
            expected_balance: 4_000,
            held: 0,
            expected_held: 0
        }]
    );
}

#[test]
fn a_coupon_still_reserved_after_its_order_expired_is_caught() {
    let mut r = clean();
    r.coupons[0].status = "reserved".into();
    let v = violations(&r);
    assert_eq!(
        v,
        vec![SaleViolation::CouponDrift {
            user: 1,
            coupon: "c1".into(),
            status: "reserved".into(),
            expected: "available".into()
        }]
    );
    assert_eq!(v[0].promise(), 6);
}

#[test]
fn an_order_without_the_points_it_was_placed_with_is_caught() {
    let mut r = clean();
    r.orders[0][0].points_used = 0;
    r.points[0].balance = 5_000;
    let v = violations(&r);
    assert!(
        v.contains(&SaleViolation::ExtrasMismatch {
            user: 0,
            order: "a".into()
        }),
        "{v:?}"
    );
}

#[test]
fn every_violation_names_its_promise_and_reads_as_a_sentence() {
    let mut r = clean();
    r.polls.push(poll(9_100.0, 4, 0));
    r.coupons[1].status = "available".into();
    for v in violations(&r) {
        assert!((1..=6).contains(&v.promise()));
        assert!(!v.describe().is_empty());
    }
}
