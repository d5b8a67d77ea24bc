//! Everything a plugin author needs, in one import: `use ploutos::prelude::*;`.
//!
//! It brings bevy's `App`, `Plugin` and ECS prelude (so that a plugin crate needs no
//! `bevy_ecs`/`bevy_app` dependency of its own, and `#[derive(Component)]` and
//! `#[derive(Resource)]` resolve through the re-exported `bevy_ecs`), the env's components
//! and schedule, the extension points ([`EnvAppExt`]), the fill and fee model traits, the
//! configuration, and the batched env to run it all.

pub use bevy_app::{self, App, Plugin, PluginGroup};
pub use bevy_ecs::{self, prelude::*};

pub use crate::config::{Config, EnvironmentConfig, FeeConfig, FillTiming, ObservationLayout, PdtConfig};
pub use crate::env::{
    ActionMask, EnvAppExt, EnvId, EnvParams, EnvReset, EnvRng, EnvStep, EpisodeBounds, EpisodeClock, Ledger,
    MarketColumns, MarketData, ObservationColumns, Orders, PdtState, Portfolio, Position, Positions, Refusal,
    RefusalCounts, RefusalReasons, ResetSystems, Side, StepBuffers, StepOutcome, StepRows, StepSystems, Targets,
    TradeRecord, bits, mark_to_market,
};
pub use crate::execution::{CostModel, FeeModel, Fees, FillInput, FillModel, FillQuote, Fills, UsEquityFees};
pub use crate::rules::BuiltInRules;
pub use crate::vec_env::{EnvError, EnvOptions, PloutosPlugins, TradingEnv};
