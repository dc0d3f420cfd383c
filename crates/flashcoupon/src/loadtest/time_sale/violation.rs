//! What can go wrong in a time sale, each tied to the promise it breaks
//! (numbered as in [`super::verify`]) and described in a sentence.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SaleViolation {
    Oversold {
        at_ms: i64,
        sold: u64,
        stock: u64,
    },
    StockDrift {
        at_ms: i64,
        sold: u64,
        remaining: u64,
        total: u64,
    },
    OverPaid {
        paid: u64,
        stock: u64,
    },
    PaymentLost {
        user: usize,
        order: String,
    },
    UnitsLost {
        held: u64,
        remaining: u64,
        stock: u64,
    },
    ReturnsMismatch {
        ended: u64,
        returned: i64,
    },
    NotExpired {
        user: usize,
        order: String,
    },
    LimitExceeded {
        user: usize,
        held: usize,
        limit: u32,
    },
    LostOrder {
        user: usize,
        order: String,
    },
    PhantomOrder {
        user: usize,
        order: String,
    },
    KeyTwoOrders {
        user: usize,
        key: String,
        orders: Vec<String>,
    },
    SeqChanged {
        order: String,
        answered: u32,
        read: u32,
    },
    SeqNotDense {
        missing: Vec<u32>,
        repeated: Vec<u32>,
    },
    SeqOutOfRange {
        order: String,
        seq: u32,
        stock: u64,
    },
    ExtrasMismatch {
        user: usize,
        order: String,
    },
    PointsDrift {
        user: usize,
        balance: i64,
        expected_balance: i64,
        held: i64,
        expected_held: i64,
    },
    CouponDrift {
        user: usize,
        coupon: String,
        status: String,
        expected: String,
    },
}

impl SaleViolation {
    /// Which of the six promises it breaks.
    pub fn promise(&self) -> u8 {
        use SaleViolation::*;
        match self {
            Oversold { .. } | StockDrift { .. } => 1,
            OverPaid { .. } | PaymentLost { .. } => 2,
            UnitsLost { .. } | ReturnsMismatch { .. } | NotExpired { .. } => 3,
            LimitExceeded { .. } => 4,
            LostOrder { .. }
            | PhantomOrder { .. }
            | KeyTwoOrders { .. }
            | SeqChanged { .. }
            | SeqNotDense { .. }
            | SeqOutOfRange { .. } => 5,
            ExtrasMismatch { .. } | PointsDrift { .. } | CouponDrift { .. } => 6,
        }
    }

    pub fn describe(&self) -> String {
        use SaleViolation::*;
        match self {
            Oversold { at_ms, sold, stock } => {
                format!("at {at_ms} ms the sale showed {sold} sold of a stock of {stock}")
            }
            StockDrift {
                at_ms,
                sold,
                remaining,
                total,
            } => format!(
                "at {at_ms} ms the sale showed {sold} sold + {remaining} remaining of {total}: not the stock"
            ),
            OverPaid { paid, stock } => format!("{paid} orders paid for a stock of {stock}"),
            PaymentLost { user, order } => {
                format!("user {user}'s order {order} was answered paid but is not paid at the end")
            }
            UnitsLost {
                held,
                remaining,
                stock,
            } => {
                format!("orders hold {held} units and {remaining} remain: not the stock of {stock}")
            }
            ReturnsMismatch { ended, returned } => {
                format!("{ended} orders ended unpaid but the stock took back {returned} units")
            }
            NotExpired { user, order } => format!(
                "user {user}'s order {order} is still pending more than 5 s after its payment time"
            ),
            LimitExceeded { user, held, limit } => {
                format!("user {user} holds {held} orders, above the limit {limit}")
            }
            LostOrder { user, order } => {
                format!("user {user} was answered 201 with order {order}, which they do not have")
            }
            PhantomOrder { user, order } => {
                format!("user {user} has order {order}, which no answer gave them")
            }
            KeyTwoOrders { user, key, orders } => {
                format!("user {user}'s key {key} was answered with different orders {orders:?}")
            }
            SeqChanged {
                order,
                answered,
                read,
            } => {
                format!("order {order} was answered with seq {answered} but reads seq {read}")
            }
            SeqNotDense { missing, repeated } => format!(
                "seqs below the highest never handed out: {missing:?}; seqs held by two orders: {repeated:?}"
            ),
            SeqOutOfRange { order, seq, stock } => {
                format!("order {order} has seq {seq}, outside 1..={stock}")
            }
            ExtrasMismatch { user, order } => format!(
                "user {user}'s order {order} does not carry the coupon and points it was placed with"
            ),
            PointsDrift {
                user,
                balance,
                expected_balance,
                held,
                expected_held,
            } => format!(
                "user {user}'s points: balance {balance} and held {held}, expected {expected_balance} and {expected_held}"
            ),
            CouponDrift {
                user,
                coupon,
                status,
                expected,
            } => {
                format!("user {user}'s coupon {coupon} is {status}, expected {expected}")
            }
        }
    }
}
