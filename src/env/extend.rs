//! Extension points for plugins: per-env state with a reset hook, refusal reasons,
//! observation columns, action masks and reward terms.
//!
//! Every built-in plugin (execution, rules, reward, observation) is written against these
//! same functions; a plugin outside the crate needs nothing else (`ploutos::prelude`).
//!
//! A plugin is built once per shard (a bevy world holding a slice of the batch), after
//! [`crate::env::EnvPlugin`], so the env entities of its shard already exist when its
//! `build` runs.

use super::schedule::{ObserveStage, Pass, Stage};
use super::{
    ActionMask, EnvId, EnvParams, EnvReset, EnvStep, EpisodeClock, MarketData, Portfolio, Positions, Refusal,
    RefusalReasons, ResetSystems, StepRows, StepSystems,
};
use bevy_app::App;
use bevy_ecs::component::Mutable;
use bevy_ecs::prelude::*;
use bevy_ecs::query::{IterQueryData, QueryData, QueryFilter, ROQueryItem};
use bevy_ecs::system::ScheduleSystem;
use std::ops::Range;

/// The envs that the running observation or episode-start systems are for: every env of
/// the shard after a step and on [`EnvReset`]; only the envs whose episode just ended in
/// [`StepSystems::Restart`]. Systems added through [`EnvAppExt`] visit their envs with
/// [`Targets::for_each_mut`] (or [`Targets::for_each`]).
#[derive(Resource, Debug, Clone, Default)]
pub struct Targets {
    /// The envs restarting in this step; empty means every env.
    entities: Vec<Entity>,
}

impl Targets {
    /// Whether every env of the shard is targeted.
    pub fn is_all(&self) -> bool {
        self.entities.is_empty()
    }

    /// Adds an env that restarts its episode in this step.
    pub(crate) fn push(&mut self, e: Entity) {
        self.entities.push(e);
    }

    /// Back to every env (after a restart).
    pub(crate) fn select_all(&mut self) {
        self.entities.clear();
    }

    /// Whether some env restarts in this step.
    pub(crate) fn restarting(targets: Res<Targets>) -> bool {
        !targets.is_all()
    }

    /// Calls `f` on the query's item of every targeted env.
    #[inline]
    pub fn for_each_mut<D: IterQueryData, F: QueryFilter>(
        &self,
        query: &mut Query<D, F>,
        mut f: impl FnMut(D::Item<'_, '_>),
    ) {
        if self.is_all() {
            query.iter_mut().for_each(f);
        } else {
            let mut items = query.iter_many_mut(&self.entities);
            // An entity the query does not match (it lacks the component) is skipped.
            while let Some(item) = items.fetch_next() {
                if let Ok(item) = item {
                    f(item);
                }
            }
        }
    }

    /// Calls `f` on the query's read-only item of every targeted env.
    #[inline]
    pub fn for_each<D: QueryData<ReadOnly: IterQueryData>, F: QueryFilter>(
        &self,
        query: &Query<D, F>,
        f: impl FnMut(ROQueryItem<'_, '_, D>),
    ) {
        if self.is_all() {
            query.iter().for_each(f);
        } else {
            query.iter_many(&self.entities).flatten().for_each(f);
        }
    }
}

/// The observation row's blocks of columns, left to right: the portfolio state
/// (`portfolio`), then the blocks plugins add with [`EnvAppExt::add_observation_columns`]
/// in the order their plugins were built, then the market part (`market`), added last.
#[derive(Resource, Debug, Clone, Default)]
pub struct ObservationColumns {
    blocks: Vec<(String, Range<usize>)>,
}

impl ObservationColumns {
    /// Appends a block of `width` columns named `name` and returns its columns.
    pub fn add(&mut self, name: &str, width: usize) -> Range<usize> {
        let start = self.width();
        self.blocks.push((name.to_string(), start..start + width));
        start..start + width
    }

    /// Observation width so far.
    pub fn width(&self) -> usize {
        self.blocks.last().map_or(0, |(_, r)| r.end)
    }

    /// The columns of block `name`.
    pub fn get(&self, name: &str) -> Option<Range<usize>> {
        self.blocks.iter().find(|(n, _)| n == name).map(|(_, r)| r.clone())
    }

    /// Every block, left to right.
    pub fn blocks(&self) -> &[(String, Range<usize>)] {
        &self.blocks
    }
}

/// Whether some plugin masks actions: then the env writes [`ActionMask`]s into
/// [`crate::env::StepBuffers::action_masks`] after every observation.
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct ActionMasking {
    pub enabled: bool,
}

/// The initial value of a per-env state component (see [`EnvAppExt::add_env_state`]).
#[derive(Resource)]
struct EnvStateInitial<C>(C);

/// Puts every targeted env's `C` back to its initial value.
fn reset_env_state<C: Component<Mutability = Mutable> + Clone>(
    initial: Res<EnvStateInitial<C>>,
    targets: Res<Targets>,
    mut envs: Query<&mut C, With<EnvId>>,
) {
    targets.for_each_mut(&mut envs, |mut c| c.clone_from(&initial.0));
}

/// Writes every targeted env's [`ActionMask`] into the learner's buffer
/// (`[n_tickers × 3]` per env: hold, buy, sell allowed; with target levels `[n_tickers ×
/// levels]`, each level allowed by the side of its order, [`super::TargetLevels::mask_row`]).
fn export_action_masks(
    targets: Res<Targets>,
    params: Res<EnvParams>,
    market: Res<MarketData>,
    mut rows: ResMut<StepRows>,
    mut envs: Query<(&EnvId, &ActionMask, &Positions, &Portfolio, &EpisodeClock)>,
) {
    if let Some(levels) = &params.targets {
        targets.for_each_mut(&mut envs, |(id, mask, positions, portfolio, clock)| {
            let closes = market.close_row(clock.bar as usize);
            levels.mask_row(rows.masks.row_mut(id.index()), mask, &positions.0, portfolio.equity, closes);
        });
        return;
    }
    targets.for_each_mut(&mut envs, |(id, mask, ..)| {
        for (k, cell) in rows.masks.row_mut(id.index()).chunks_exact_mut(3).enumerate() {
            cell[1] = mask.allows(k, 1);
            cell[2] = mask.allows(k, 2);
        }
    });
}

/// The extension points, as methods on the shard's [`App`].
pub trait EnvAppExt {
    /// Gives every env its own `C`, a clone of `initial`, put back to `initial` at every
    /// episode start (explicit reset and auto-reset alike), before the new episode's first
    /// observation.
    ///
    /// # Panics
    /// As [`EnvAppExt::insert_on_envs`].
    fn add_env_state<C: Component<Mutability = Mutable> + Clone>(&mut self, initial: C) -> &mut Self;

    /// Inserts a clone of `component` on every env, with no reset (state that lives across
    /// episodes, or that the plugin resets itself in an episode-start system).
    ///
    /// # Panics
    /// When called before [`crate::env::EnvPlugin`] has spawned the envs (a plugin added
    /// before the core): a programming error, caught when the env is built.
    fn insert_on_envs<C: Component + Clone>(&mut self, component: C) -> &mut Self;

    /// Adds systems that run at every episode start, for the envs in [`Targets`], after
    /// the core has drawn the new first bar and reset the portfolio, and before the first
    /// observation: the reset hook for state that needs more than a fresh copy.
    fn add_episode_start_systems<M>(
        &mut self,
        systems: impl IntoScheduleConfigs<ScheduleSystem, M> + Clone,
    ) -> &mut Self;

    /// Registers a refusal reason (idempotent by name) and returns its code for
    /// [`crate::env::Orders::refuse`].
    fn register_refusal(&mut self, name: &str) -> Refusal;

    /// Appends `width` observation columns named `name`, returns their indices in the row.
    fn add_observation_columns(&mut self, name: &str, width: usize) -> Range<usize>;

    /// Adds systems that write observation columns: after every step for every env, and at
    /// every episode start for the envs that start one ([`Targets`]).
    fn add_observation_systems<M>(&mut self, systems: impl IntoScheduleConfigs<ScheduleSystem, M> + Clone)
    -> &mut Self;

    /// Adds systems that forbid actions for the coming decision with
    /// [`ActionMask::forbid_buy`] / [`ActionMask::forbid_sell`] / [`ActionMask::forbid_short`]
    /// (or [`ActionMask::forbid_exits`]): they run where observation
    /// systems run, after them; the masks then go to
    /// [`crate::env::StepBuffers::action_masks`], and masked orders are refused.
    fn add_action_mask_systems<M>(&mut self, systems: impl IntoScheduleConfigs<ScheduleSystem, M> + Clone)
    -> &mut Self;

    /// Adds systems that add a term to each env's [`crate::env::StepOutcome::reward`].
    fn add_reward_systems<M>(&mut self, systems: impl IntoScheduleConfigs<ScheduleSystem, M>) -> &mut Self;
}

/// Adds observation systems that read the finished action masks: they run after every
/// mask system, beside the masks' export (the `allowed` columns).
pub(crate) fn add_mask_readers<M>(app: &mut App, systems: impl IntoScheduleConfigs<ScheduleSystem, M> + Clone) {
    add_to_observation(app, Stage::Export, systems);
}

/// Adds `systems` to observation stage `stage` of both passes (and of [`EnvReset`]).
fn add_to_observation<M>(
    app: &mut App,
    stage: Stage,
    systems: impl IntoScheduleConfigs<ScheduleSystem, M> + Clone,
) -> &mut App {
    app.add_systems(EnvStep, systems.clone().in_set(ObserveStage(Pass::Step, stage)))
        .add_systems(EnvStep, systems.clone().in_set(ObserveStage(Pass::Start, stage)))
        .add_systems(EnvReset, systems.in_set(ObserveStage(Pass::Start, stage)))
}

impl EnvAppExt for App {
    fn add_env_state<C: Component<Mutability = Mutable> + Clone>(&mut self, initial: C) -> &mut Self {
        self.insert_on_envs(initial.clone())
            .insert_resource(EnvStateInitial(initial))
            .add_episode_start_systems(reset_env_state::<C>)
    }

    fn insert_on_envs<C: Component + Clone>(&mut self, component: C) -> &mut Self {
        let world = self.world_mut();
        let envs: Vec<Entity> = world.query_filtered::<Entity, With<EnvId>>().iter(world).collect();
        assert!(
            !envs.is_empty() || world.contains_resource::<super::EnvParams>(),
            "per-env state is added after EnvPlugin, which spawns the envs"
        );
        for e in envs {
            world.entity_mut(e).insert(component.clone());
        }
        self
    }

    fn add_episode_start_systems<M>(
        &mut self,
        systems: impl IntoScheduleConfigs<ScheduleSystem, M> + Clone,
    ) -> &mut Self {
        self.add_systems(EnvStep, systems.clone().in_set(ResetSystems::Hooks))
            .add_systems(EnvReset, systems.in_set(ResetSystems::Hooks))
    }

    fn register_refusal(&mut self, name: &str) -> Refusal {
        self.world_mut().resource_mut::<RefusalReasons>().register(name)
    }

    fn add_observation_columns(&mut self, name: &str, width: usize) -> Range<usize> {
        self.world_mut().resource_mut::<ObservationColumns>().add(name, width)
    }

    fn add_observation_systems<M>(
        &mut self,
        systems: impl IntoScheduleConfigs<ScheduleSystem, M> + Clone,
    ) -> &mut Self {
        add_to_observation(self, Stage::Columns, systems)
    }

    fn add_action_mask_systems<M>(
        &mut self,
        systems: impl IntoScheduleConfigs<ScheduleSystem, M> + Clone,
    ) -> &mut Self {
        let mut masking = self.world_mut().resource_mut::<ActionMasking>();
        if !masking.enabled {
            masking.enabled = true;
            add_to_observation(self, Stage::Export, export_action_masks);
        }
        add_to_observation(self, Stage::Masks, systems)
    }

    fn add_reward_systems<M>(&mut self, systems: impl IntoScheduleConfigs<ScheduleSystem, M>) -> &mut Self {
        self.add_systems(EnvStep, systems.in_set(StepSystems::Reward))
    }
}
