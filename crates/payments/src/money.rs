//! The arithmetic of a payment: commission, the legs of a payment, and how a refund reverses
//! them. Integers only; every rounding rule is stated where it is applied.

/// Basis points in one whole: a commission rate of 10,000 bps takes the whole food amount.
pub const BPS_ONE: u64 = 10_000;

/// Commission on `base` at `bps` basis points, rounded half up to the minor unit
/// (12.345 → 12, 12.5 → 13). Never more than `base` while `bps <= BPS_ONE`.
pub fn commission(base: u64, bps: u32) -> u64 {
    let product = u128::from(base) * u128::from(bps);
    let rounded = (product + u128::from(BPS_ONE / 2)) / u128::from(BPS_ONE);
    u64::try_from(rounded).expect("commission is at most base")
}

/// Where the money of one payment went. The user paid `total` = merchant + rider + platform −
/// coupon: the coupon (campaign budget) paid `coupon` towards the order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Legs {
    /// To the merchant: the food amount less commission.
    pub merchant: u64,
    /// To the rider: the delivery fee.
    pub rider: u64,
    /// To the platform: the commission.
    pub platform: u64,
    /// From the campaign budget: the discount.
    pub coupon: u64,
}

impl Legs {
    /// What the user paid: everything the payees got, less what the coupon paid.
    pub fn total(&self) -> u64 {
        self.merchant + self.rider + self.platform - self.coupon
    }

    fn minus(&self, other: &Legs) -> Legs {
        Legs {
            merchant: self.merchant - other.merchant,
            rider: self.rider - other.rider,
            platform: self.platform - other.platform,
            coupon: self.coupon - other.coupon,
        }
    }

    pub fn plus(&self, other: &Legs) -> Legs {
        Legs {
            merchant: self.merchant + other.merchant,
            rider: self.rider + other.rider,
            platform: self.platform + other.platform,
            coupon: self.coupon + other.coupon,
        }
    }
}

/// The legs of an order: food amount, delivery fee, discount (at most the food amount) and the
/// merchant's commission rate. Commission is charged on what the merchant sells the food for:
/// the food amount, less the discount when the merchant funds it.
pub fn payment_legs(
    food: u64,
    delivery: u64,
    discount: u64,
    bps: u32,
    merchant_funded: bool,
) -> Legs {
    debug_assert!(discount <= food);
    let base = if merchant_funded { food - discount } else { food };
    let platform = commission(base, bps);
    Legs { merchant: food - platform, rider: delivery, platform, coupon: discount }
}

/// The legs a refund of `amount` reverses, given what is not yet refunded (`remaining`).
///
/// Rule: every leg is reversed in proportion to `amount / remaining.total()`, rounded down,
/// the merchant's leg taking the rounding difference so that the legs add up to exactly
/// `amount`. The delivery fee is thus refunded in proportion too. The last refund (the one that
/// brings the refunded total to the amount paid) reverses exactly what remains of every leg, so
/// over all refunds each party gives back exactly what it got. No leg ever reverses more than
/// remains of it, and none is negative.
pub fn refund_legs(remaining: &Legs, amount: u64) -> Legs {
    let total = remaining.total();
    assert!(amount <= total, "refund {amount} above the remaining {total}");
    if amount == total {
        return *remaining;
    }
    let share = |leg: u64| {
        u64::try_from(u128::from(leg) * u128::from(amount) / u128::from(total))
            .expect("share is at most the leg")
    };
    let coupon = share(remaining.coupon);
    let mut rider = share(remaining.rider);
    let mut platform = share(remaining.platform);
    // The payees give back the refund plus what returns to the coupon budget.
    let owed = amount + coupon;
    // Rounding can leave the merchant a unit or two outside [0, remaining]: move the
    // difference to the other payees, who have room because all remaining legs cover `owed`.
    let merchant = owed.saturating_sub(rider + platform).min(remaining.merchant);
    let mut gap = i128::from(owed) - i128::from(merchant + rider + platform);
    for leg in [(&mut platform, remaining.platform), (&mut rider, remaining.rider)] {
        let (value, cap) = leg;
        if gap > 0 {
            let add = u64::try_from(gap).expect("positive").min(cap - *value);
            *value += add;
            gap -= i128::from(add);
        } else if gap < 0 {
            let take = u64::try_from(-gap).expect("positive").min(*value);
            *value -= take;
            gap += i128::from(take);
        }
    }
    assert_eq!(gap, 0, "remaining legs {remaining:?} cannot cover a refund of {amount}");
    let legs = Legs { merchant, rider, platform, coupon };
    debug_assert_eq!(legs.total(), amount);
    legs
}

/// What remains to refund after `refunded` legs were reversed from `paid`.
pub fn remaining_legs(paid: &Legs, refunded: &Legs) -> Legs {
    paid.minus(refunded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commission_rounds_half_up() {
        assert_eq!(commission(10_000, 1_234), 1_234);
        assert_eq!(commission(1_000, 15), 2); // 1.5 → 2
        assert_eq!(commission(1_000, 14), 1); // 1.4 → 1
        assert_eq!(commission(999, 10_000), 999);
        assert_eq!(commission(0, 10_000), 0);
        assert_eq!(commission(u64::MAX, 10_000), u64::MAX);
    }

    #[test]
    fn payment_legs_add_up_to_what_the_user_pays() {
        let legs = payment_legs(5_000, 500, 1_000, 2_000, false);
        assert_eq!(legs, Legs { merchant: 4_000, rider: 500, platform: 1_000, coupon: 1_000 });
        assert_eq!(legs.total(), 4_500);
        // Merchant-funded: commission on the discounted food amount.
        let legs = payment_legs(5_000, 500, 1_000, 2_000, true);
        assert_eq!(legs.platform, 800);
        assert_eq!(legs.total(), 4_500);
    }

    #[test]
    fn a_full_refund_reverses_every_leg_exactly() {
        let paid = payment_legs(3_333, 701, 333, 1_750, false);
        assert_eq!(refund_legs(&paid, paid.total()), paid);
    }

    #[test]
    fn half_refund_reverses_about_half_of_each_leg() {
        let paid = payment_legs(10_000, 1_000, 2_000, 1_000, false);
        let legs = refund_legs(&paid, paid.total() / 2);
        assert_eq!(legs.total(), 4_500);
        assert_eq!(legs.rider, 500);
        assert_eq!(legs.platform, 500);
        assert_eq!(legs.coupon, 1_000);
        assert_eq!(legs.merchant, 4_500 + 1_000 - 500 - 500);
    }

    proptest! {
        #[test]
        fn refunds_in_any_steps_reverse_exactly_what_was_paid(
            food in 0u64..100_000,
            delivery in 0u64..5_000,
            discount_share in 0u64..=100,
            bps in 0u32..=10_000,
            merchant_funded: bool,
            steps in proptest::collection::vec(1u64..10_000, 1..12),
        ) {
            let discount = food * discount_share / 100;
            let paid = payment_legs(food, delivery, discount, bps, merchant_funded);
            prop_assume!(paid.total() > 0);
            let mut refunded = Legs::default();
            for step in steps {
                let remaining = remaining_legs(&paid, &refunded);
                if remaining.total() == 0 { break; }
                let amount = step.min(remaining.total());
                let legs = refund_legs(&remaining, amount);
                prop_assert_eq!(legs.total(), amount);
                prop_assert!(legs.merchant <= remaining.merchant);
                prop_assert!(legs.rider <= remaining.rider);
                prop_assert!(legs.platform <= remaining.platform);
                prop_assert!(legs.coupon <= remaining.coupon);
                refunded = refunded.plus(&legs);
            }
            let remaining = remaining_legs(&paid, &refunded);
            let last = refund_legs(&remaining, remaining.total());
            prop_assert_eq!(refunded.plus(&last), paid);
        }
    }
}
