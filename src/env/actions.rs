//! Actions from the learner become orders.

use crate::env::{ActionBuffer, ActionMask, ActionMasking, EnvId, Orders, Position, Positions, Refusal, Targets};
use bevy_ecs::prelude::*;

/// Decodes each env's row of the [`ActionBuffer`] into [`Orders`], refuses the orders its
/// [`ActionMask`] forbade, and clears the mask for the next observation.
///
/// Reads [`ActionBuffer`], [`Positions`], [`ActionMasking`]; writes [`Orders`], and
/// [`ActionMask`] when some plugin masks actions. Runs in
/// [`crate::env::StepSystems::Act`]. Codes: 0 hold, 1 buy, 2 sell; any other code is
/// counted as `invalid_action` and held; a sell with no position is counted as
/// `no_position`, a masked order as `masked`.
#[allow(clippy::type_complexity, reason = "the two queries of a ParamSet")]
pub fn apply_actions(
    actions: Res<ActionBuffer>,
    masking: Res<ActionMasking>,
    mut envs: ParamSet<(
        Query<(&EnvId, &mut Orders, &Positions)>,
        Query<(&EnvId, &mut Orders, &Positions, &mut ActionMask)>,
    )>,
) {
    // Without a masking plugin no mask is ever set: the step does not touch the masks.
    if !masking.enabled {
        envs.p0().iter_mut().for_each(|(id, mut orders, positions)| {
            decode(&mut orders, actions.row(id.index()), &positions.0);
        });
        return;
    }
    envs.p1().iter_mut().for_each(|(id, mut orders, positions, mut mask)| {
        decode(&mut orders, actions.row(id.index()), &positions.0);
        // A ticker has one action, so one mask over both sides refuses exactly the masked ones.
        let forbidden = (orders.buy & mask.no_buy) | (orders.sell & mask.no_sell);
        orders.refuse(forbidden, Refusal::MASKED);
        *mask = ActionMask::default();
    });
}

/// Decodes one env's actions.
pub fn decode(orders: &mut Orders, row: &[u8], positions: &[Position]) {
    let (mut buy, mut sell, mut invalid, mut held) = (0u64, 0u64, 0u32, 0u64);
    for (k, (&a, pos)) in row.iter().zip(positions).enumerate() {
        buy |= u64::from(a == 1) << k;
        sell |= u64::from(a == 2) << k;
        invalid += u32::from(a > 2);
        held |= u64::from(pos.shares > 0.0) << k;
    }
    orders.refused = Default::default();
    orders.refused.0[Refusal::INVALID_ACTION.0 as usize] = invalid;
    orders.n_refused = invalid;
    orders.buy = buy;
    orders.sell = sell;
    orders.refuse(sell & !held, Refusal::NO_POSITION);
}

/// Masks the sells of tickers the env does not hold (refused as `no_position` if sent).
///
/// Reads [`Positions`]; writes [`ActionMask`]. The core's action-mask system (only with
/// [`crate::env::EnvParams::action_masks`]).
pub fn mask_sells_without_position(targets: Res<Targets>, mut envs: Query<(&Positions, &mut ActionMask)>) {
    targets.for_each_mut(&mut envs, |(positions, mut mask)| {
        let held = positions.0.iter().enumerate().fold(0u64, |m, (k, p)| m | u64::from(p.shares > 0.0) << k);
        mask.forbid_sell(!held);
    });
}
