//! The limits `ploutos trade` checks before every order and at every bar, whatever the
//! agent decided: a maximum order notional, a maximum daily loss (then flatten and stop),
//! and a kill-switch file or an interrupt (Ctrl-C) (stop before sending anything more).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag another thread raises to stop the session (the command line's Ctrl-C handler):
/// checked where the kill switch is. Two interrupts are equal when they are the same flag.
#[derive(Debug, Clone)]
pub struct Interrupt(pub Arc<AtomicBool>);

impl Interrupt {
    /// Whether the flag is raised.
    pub fn raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl PartialEq for Interrupt {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The configured limits; `None` is off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// No order worth more than this (shares × the last close), in dollars.
    pub max_order_notional: Option<f64>,
    /// Stop when equity falls this fraction under the day's first equity (0.05 = 5%).
    pub max_daily_loss: Option<f64>,
    /// Stop when this file exists.
    pub kill_switch: Option<PathBuf>,
    /// Stop when this flag is raised.
    pub interrupt: Option<Interrupt>,
}

/// Why an order is withheld or the session stops.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The order is over `max_order_notional`: withheld, the session goes on.
    OrderTooLarge { notional: f64, max: f64 },
    /// The day's loss reached `max_daily_loss`: flatten and stop.
    DailyLoss { loss: f64, max: f64 },
    /// The kill-switch file exists: stop, send nothing more.
    KillSwitch(PathBuf),
    /// Interrupted (Ctrl-C): stop, send nothing more.
    Interrupted,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OrderTooLarge { notional, max } => {
                write!(f, "order of ${notional:.2} over the maximum order notional ${max:.2}: withheld")
            }
            Self::DailyLoss { loss, max } => write!(
                f,
                "daily loss {:.2}% reached the maximum {:.2}%: flattening and stopping",
                100.0 * loss,
                100.0 * max
            ),
            Self::KillSwitch(path) => write!(f, "kill switch {} exists: stopping", path.display()),
            Self::Interrupted => f.write_str("interrupted (Ctrl-C): stopping"),
        }
    }
}

impl Limits {
    /// Whether an order worth `notional` dollars (its shares × the last close, or its
    /// notional) may be sent.
    ///
    /// # Errors
    /// [`Stop::OrderTooLarge`].
    pub fn check_order(&self, notional: f64) -> Result<(), Stop> {
        let notional = notional.abs();
        match self.max_order_notional {
            Some(max) if notional > max => Err(Stop::OrderTooLarge { notional, max }),
            _ => Ok(()),
        }
    }

    /// Whether the session was interrupted or the kill-switch file exists: checked again
    /// right before orders go out, since a bar's decision and its orders can be a night apart.
    ///
    /// # Errors
    /// [`Stop::Interrupted`], [`Stop::KillSwitch`].
    pub fn check_kill_switch(&self) -> Result<(), Stop> {
        if self.interrupt.as_ref().is_some_and(Interrupt::raised) {
            return Err(Stop::Interrupted);
        }
        match self.kill_switch.as_deref().filter(|p| Path::exists(p)) {
            Some(path) => Err(Stop::KillSwitch(path.to_path_buf())),
            None => Ok(()),
        }
    }

    /// Whether the session may go on at a bar where equity is `equity` and was
    /// `day_start` at the day's first bar.
    ///
    /// # Errors
    /// [`Stop::KillSwitch`] first, then [`Stop::DailyLoss`].
    pub fn check_bar(&self, day_start: f64, equity: f64) -> Result<(), Stop> {
        self.check_kill_switch()?;
        let loss = if day_start > 0.0 { (day_start - equity) / day_start } else { 0.0 };
        match self.max_daily_loss {
            Some(max) if loss >= max => Err(Stop::DailyLoss { loss, max }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_withhold_large_orders_and_stop_on_loss_or_kill_switch() {
        let dir = tempfile::tempdir().unwrap();
        let kill = dir.path().join("STOP");
        let flag = Interrupt(Arc::new(AtomicBool::new(false)));
        let limits = Limits {
            max_order_notional: Some(5_000.0),
            max_daily_loss: Some(0.05),
            kill_switch: Some(kill.clone()),
            interrupt: Some(flag.clone()),
        };
        assert!(limits.check_order(4_900.0).is_ok());
        assert!(limits.check_order(-4_900.0).is_ok());
        let err = limits.check_order(5_100.0).unwrap_err();
        assert_eq!(err.to_string(), "order of $5100.00 over the maximum order notional $5000.00: withheld");
        assert!(limits.check_bar(10_000.0, 9_600.0).is_ok());
        assert!(matches!(limits.check_bar(10_000.0, 9_500.0), Err(Stop::DailyLoss { .. })));
        std::fs::write(&kill, "").unwrap();
        assert_eq!(limits.check_bar(10_000.0, 10_100.0), Err(Stop::KillSwitch(kill)));
        flag.0.store(true, Ordering::SeqCst);
        assert_eq!(limits.check_kill_switch(), Err(Stop::Interrupted));
        assert!(Limits::default().check_order(1e12).is_ok());
        assert!(Limits::default().check_bar(1.0, 0.0).is_ok());
    }
}
