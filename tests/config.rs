//! Config: documented defaults, both shipped files load and round-trip through RON, and
//! every kind of bad input is rejected with the key named.

use ploutos::config::{Config, ConfigError, Interval, ObservationLayout, RewardMode};
use std::path::Path;

#[test]
fn defaults_are_the_seeds() {
    let c = Config::default();
    let t = &c.training;
    assert_eq!((t.learning_rate, t.batch_size, t.n_steps, t.n_epochs), (5e-5, 8192, 4096, 20));
    assert_eq!((t.gamma, t.gae_lambda, t.clip_range, t.ent_coef, t.target_kl), (0.995, 0.98, 0.2, 0.01, Some(0.015)));
    assert_eq!((t.n_envs, t.net_arch.clone()), (16, vec![1024, 512, 256]));
    let e = &c.environment;
    assert_eq!((e.buy_pct, e.max_position_pct, e.spread_bps), (0.2, 0.3, 2.0));
    assert_eq!((e.fees.sec_fee_rate, e.fees.taf_rate, e.fees.commission_per_order), (0.0000221, 0.000145, 0.0));
    assert_eq!((e.pdt.equity_threshold, e.pdt.max_day_trades, e.pdt.window_days), (25_000.0, 3, 5));
    assert_eq!(e.max_trades_per_day, Some(4));
    assert_eq!(e.reward.mode, RewardMode::Seed);
    assert_eq!(e.observation_layout, ObservationLayout::Materialized);
    assert_eq!(c.data.tickers.len(), 10);
    assert_eq!(c.data.interval, Interval::Hour);
    c.validate().expect("defaults are valid");
}

#[test]
fn every_shipped_config_loads_and_round_trips() {
    let mut n = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config")).expect("config/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "ron") {
            let cfg = Config::load(&path, &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let again = Config::from_ron_str(&cfg.to_ron(), "round-trip").expect("own output parses");
            assert_eq!(cfg, again, "{} round-trips", path.display());
            n += 1;
        }
    }
    assert!(n >= 2, "default.ron and ultimate.ron at least");
}

#[test]
fn ultimate_is_the_seed_v3_config() {
    let c = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ultimate.ron"), &[]).expect("loads");
    let t = &c.training;
    assert_eq!(t.net_arch, vec![1024, 512, 256]);
    assert_eq!((t.learning_rate, t.batch_size, t.n_steps, t.n_epochs, t.n_envs), (5e-5, 8192, 4096, 20, 16));
    assert_eq!((t.gamma, t.gae_lambda, t.clip_range, t.ent_coef, t.target_kl), (0.995, 0.98, 0.2, 0.01, Some(0.015)));
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = Config::load(Path::new("no/such/missing.ron"), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().contains("missing.ron"), "{err}");
}

#[test]
fn unknown_key_is_rejected_with_its_path_and_line() {
    let err = Config::from_ron_str("(\n  training: (gama: 0.9),\n)", "x.ron").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("x.ron:2:"), "{msg}");
    assert!(msg.contains("gama") && msg.contains("training.gama"), "{msg}");
    // An optional key written bare says how to write it.
    let err = Config::from_ron_str("(\n  training: (run_name: \"a\"),\n)", "x.ron").unwrap_err().to_string();
    assert!(
        err.starts_with("x.ron:2:") && err.contains("training.run_name") && err.contains("Some(value) or None"),
        "{err}"
    );
}

#[test]
fn out_of_range_override_names_key_and_range() {
    let err = Config::default()
        .with_overrides(&["training.gamma=2".into()])
        .and_then(|c| c.validate().map(|_| c))
        .unwrap_err();
    assert!(matches!(err, ConfigError::OutOfRange { .. }));
    let msg = err.to_string();
    assert!(msg.contains("training.gamma") && msg.contains("[0, 1]"), "{msg}");
    // A synthetic market's start outside the calendar's range (a negative year was a panic
    // in the Easter computation; one near chrono's last date a market cut short).
    for start in ["-0100-01-01", "+262140-01-01", "1899-12-31"] {
        let err = Config::default()
            .with_overrides(&[format!("data.synthetic.start={start}")])
            .and_then(|c| c.validate().map(|_| c))
            .unwrap_err();
        assert!(err.to_string().contains("data.synthetic.start") && err.to_string().contains("1900-01-01"), "{err}");
    }
}

#[test]
fn overrides_set_nested_keys_and_reject_unknown_ones() {
    let c = Config::default()
        .with_overrides(&[
            "training.net_arch=[64,64]".into(),
            "training.device=cuda".into(),
            "environment.pdt.enabled=false".into(),
            "environment.max_trades_per_day=null".into(),
            "data.interval=1d".into(),
        ])
        .expect("valid overrides");
    assert_eq!(c.training.net_arch, vec![64, 64]);
    assert_eq!(c.training.device, "cuda");
    assert!(!c.environment.pdt.enabled);
    assert_eq!(c.environment.max_trades_per_day, None);
    assert_eq!(c.data.interval, Interval::Day);
    for bad in ["training.gama=1", "nope.x=1", "training.gamma", "training.net_arch=64", "data.interval=5m"] {
        let err = Config::default().with_overrides(&[bad.into()]).unwrap_err();
        assert!(err.to_string().contains(bad.split('=').next().unwrap_or(bad)), "{bad}: {err}");
    }
}

#[test]
fn cross_field_checks() {
    let err =
        Config::default().with_overrides(&["training.batch_size=100000000".into()]).unwrap().validate().unwrap_err();
    assert!(err.to_string().contains("training.batch_size"), "{err}");
    let err = Config::default()
        .with_overrides(&["data.split.train_fraction=0.9".into(), "data.split.validation_fraction=0.2".into()])
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("validation_fraction"), "{err}");
    // Tickers are unique whatever their case (one file on macOS and Windows).
    for tickers in [r#"["AAA","aaa"]"#, r#"["AAA","BBB","AAA"]"#] {
        let err = Config::default()
            .with_overrides(&[format!("data.tickers={tickers}")])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("data.tickers") && err.contains("unique, whatever their case"), "{err}");
    }
}

#[test]
fn overrides_take_ron_options() {
    let c = Config::default()
        .with_overrides(&["environment.max_trades_per_day=None".into(), "training.target_kl=Some(0.02)".into()])
        .unwrap();
    assert_eq!(c.environment.max_trades_per_day, None);
    assert_eq!(c.training.target_kl, Some(0.02));
    let c = c.with_overrides(&["environment.max_trades_per_day=Some(6)".into()]).unwrap();
    assert_eq!(c.environment.max_trades_per_day, Some(6));
}

/// An out-of-range value in a file is reported at its line and column; one given by
/// `--set` names the `--set` (the last one of its key wins, as it does for the value).
#[test]
fn out_of_range_values_say_where_they_were_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ron");
    std::fs::write(&path, "(\n  training: (\n    gamma: 0.9,\n    learning_rate: 2.0,\n  ),\n  environment: (fees: (sec_fee_rate: 5.0)),\n)\n").unwrap();
    let shown = path.display().to_string();
    let msg = Config::load(&path, &[]).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{shown}:4:5: ")), "{msg}");
    assert!(msg.contains("training.learning_rate") && msg.contains("(0, 1]"), "{msg}");

    std::fs::write(&path, "(environment: (fees: (sec_fee_rate: 5.0)))").unwrap();
    let msg = Config::load(&path, &[]).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{shown}:1:23: ")), "{msg}");

    let sets = ["training.gamma=0.5".to_string(), "training.gamma=7".to_string()];
    let msg = Config::load(&path, &sets[..1]).unwrap_err().to_string();
    assert!(msg.contains("environment.fees.sec_fee_rate"), "the file's error first: {msg}");
    std::fs::write(&path, "(training: (gamma: 0.9))").unwrap();
    let msg = Config::load(&path, &sets).unwrap_err().to_string();
    assert!(msg.starts_with("--set training.gamma=7: "), "{msg}");

    // A NaN in the file is the file's error, whatever --set is given beside it.
    std::fs::write(&path, "(\n  training: (\n    learning_rate: NaN,\n  ),\n)\n").unwrap();
    for sets in [&[][..], &["training.seed=3".to_string()][..]] {
        let msg = Config::load(&path, sets).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("{shown}:3:5: ")) && msg.contains("training.learning_rate"), "{msg}");
    }
    // A value of the wrong type names its own --set, not the others.
    std::fs::write(&path, "()").unwrap();
    let sets = ["training.seed=3", "training.n_envs=abc", "training.gamma=0.9"].map(String::from);
    let msg = Config::load(&path, &sets).unwrap_err().to_string();
    assert!(msg.starts_with("--set training.n_envs=abc: "), "{msg}");
    // A section is not a value; a map (plugins' settings) takes an object.
    let msg = Config::load(&path, &["environment=[1,2]".to_string()]).unwrap_err().to_string();
    assert!(msg.contains("`environment` is a section: set its keys"), "{msg}");
    let cfg = Config::load(&path, &["environment.plugins={\"x\":1}".to_string()]).unwrap();
    assert_eq!(cfg.environment.plugins.len(), 1);
    // A NaN of an `Option` key is the file's error too (not a silent None).
    std::fs::write(&path, "(\n  environment: (\n    max_participation: Some(NaN),\n  ),\n)\n").unwrap();
    for sets in [&[][..], &["training.seed=3".to_string()][..]] {
        let msg = Config::load(&path, sets).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("{shown}:3:5: ")) && msg.contains("max_participation"), "{msg}");
    }
    // Unless a --set replaces it.
    let cfg = Config::load(&path, &["environment.max_participation=None".to_string()]).unwrap();
    assert_eq!(cfg.environment.max_participation, None);
    // Also inside a list the --set replaces as a whole.
    let levels = "(\n  environment: (\n    target_positions: (levels: [0.0, NaN]),\n  ),\n)\n";
    std::fs::write(&path, levels).unwrap();
    let cfg = Config::load(&path, &["environment.target_positions.levels=[0.0,1.0]".to_string()]).unwrap();
    assert_eq!(cfg.environment.target_positions.levels, [0.0, 1.0]);
    // Behind another bad key that a --set fixes, still found.
    std::fs::write(&path, "(\n  training: (\n    learning_rate: -1.0,\n    target_kl: Some(NaN),\n  ),\n)\n").unwrap();
    let msg = Config::load(&path, &["training.learning_rate=0.001".to_string()]).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{shown}:4:5: ")) && msg.contains("training.target_kl"), "{msg}");
    // A ticker named like a number's text is no NaN: a cross-field error a --set fixes passes.
    std::fs::write(&path, "(environment: (short_selling: (no_short: [\"info\"])))").unwrap();
    let sets = ["data.tickers=[\"info\",\"BBB\"]".to_string()];
    assert!(Config::load(&path, &sets).is_ok());
    // A struct section does not take an object (its other keys would silently reset).
    std::fs::write(&path, "()").unwrap();
    let msg = Config::load(&path, &["environment={\"episode_length\":100}".to_string()]).unwrap_err().to_string();
    assert!(msg.contains("`environment` is a section"), "{msg}");
}
