//! Actions from the learner become orders.

use crate::env::{ActionBuffer, EnvId, Orders, Positions, Refusal};
use bevy_ecs::prelude::*;

/// Decodes each env's row of the [`ActionBuffer`] into [`Orders`].
///
/// Reads [`ActionBuffer`], [`Positions`]; writes [`Orders`]. Runs in
/// [`crate::env::StepSystems::Act`]. Codes: 0 hold, 1 buy, 2 sell; any other code is
/// counted as `invalid_action` and held; a sell with no position is counted as
/// `no_position`.
pub fn apply_actions(actions: Res<ActionBuffer>, mut envs: Query<(&EnvId, &mut Orders, &Positions)>) {
    envs.iter_mut().for_each(|(id, mut orders, positions)| {
        decode(&mut orders, actions.row(id.index()), &positions.0);
    });
}

/// Decodes one env's actions.
pub fn decode(orders: &mut Orders, row: &[u8], positions: &[crate::env::Position]) {
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
