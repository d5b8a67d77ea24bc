//! Actions from the learner become orders.

use crate::env::{ActionBuffer, ActionMask, EnvId, Orders, Position, Positions, Refusal};
use bevy_ecs::prelude::*;

/// Decodes each env's row of the [`ActionBuffer`] into [`Orders`], refuses the orders its
/// [`ActionMask`] forbade, and clears the mask for the next observation.
///
/// Reads [`ActionBuffer`], [`Positions`]; writes [`Orders`], [`ActionMask`]. Runs in
/// [`crate::env::StepSystems::Act`]. Codes: 0 hold, 1 buy, 2 sell; any other code is
/// counted as `invalid_action` and held; a sell with no position is counted as
/// `no_position`, a masked order as `masked`.
pub fn apply_actions(actions: Res<ActionBuffer>, mut envs: Query<(&EnvId, &mut Orders, &Positions, &mut ActionMask)>) {
    envs.iter_mut().for_each(|(id, mut orders, positions, mut mask)| {
        decode(&mut orders, actions.row(id.index()), &positions.0);
        // Without masking plugins the mask is all zeros: a no-op refusal, no branch. A
        // ticker has one action, so one mask over both sides refuses exactly the masked ones.
        let masked = (orders.buy & mask.no_buy) | (orders.sell & mask.no_sell);
        orders.refuse(masked, Refusal::MASKED);
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
    orders.buy = buy;
    orders.sell = sell;
    orders.refuse(sell & !held, Refusal::NO_POSITION);
}
