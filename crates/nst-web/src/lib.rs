//! nst in the browser. Compiled for `wasm32-unknown-unknown`, this crate is the web page's
//! module: the same engine, kernels and shaders as the command line, on the browser's WebGPU
//! ([`page`]). Compiled natively, it is the tool that builds that page ([`build()`]):
//! `cargo run -p nst-web -- web/dist`.
//!
//! What the page and the engine share is said once: the defaults the page's controls start
//! from come from [`nst_transfer::defaults`] through [`page::defaults`], and the page's
//! settings are checked by the engine, whose errors name the setting.

#[cfg(not(target_arch = "wasm32"))]
mod build;
#[cfg(target_arch = "wasm32")]
pub mod page;

#[cfg(not(target_arch = "wasm32"))]
pub use build::{build, wasm_target_installed, BuildError, Profile, WASM_TARGET};

/// The settings the page sends with a run, as JSON: what its controls set. Fields left out
/// take the engine's defaults.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSettings {
    /// Longest side of the output, in pixels.
    pub size: Option<u32>,
    /// Iterations at each scale.
    pub iterations: Option<u32>,
    /// How much style, in [0, 1].
    pub strength: Option<f64>,
    /// `lbfgs` or `adam`.
    pub optimizer: Option<String>,
    /// The optimizer's step size.
    pub lr: Option<f64>,
    /// Hand the page a preview every this many iterations (0: never).
    pub preview_every: Option<u32>,
}

impl PageSettings {
    /// The engine's settings for the page's JSON: its defaults where the page says nothing,
    /// the losses read back every iteration so that the page updates (and can stop) at each.
    /// Errors name the setting, as the engine's do.
    pub fn parse(json: &str) -> Result<nst_transfer::Settings, String> {
        use nst_transfer::{LossConfig, Optimizer, Settings};
        let p: PageSettings =
            serde_json::from_str(json).map_err(|e| format!("the page's settings: {e}"))?;
        let mut s = Settings::default().report_every(1).lr(p.lr);
        if let Some(size) = p.size {
            s = s.size(size);
        }
        if let Some(iterations) = p.iterations {
            s = s.iterations(iterations);
        }
        if let Some(every) = p.preview_every {
            s = s.snapshot_every(every);
        }
        if let Some(o) = p.optimizer.as_deref() {
            s = s.optimizer(match o {
                "adam" => Optimizer::Adam,
                "lbfgs" => Optimizer::LBFGS,
                other => {
                    return Err(format!(
                        "optimizer: must be `lbfgs` or `adam`, got `{other}`"
                    ))
                }
            });
        }
        if let Some(strength) = p.strength {
            let loss = LossConfig::default()
                .with_strength(strength)
                .map_err(|e| e.to_string())?;
            s = s.loss(loss);
        }
        s.validate().map_err(|e| e.to_string())?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::PageSettings;
    use nst_transfer::{LossConfig, Optimizer, Settings};

    #[test]
    fn the_page_starts_from_the_engines_defaults() {
        let s = PageSettings::parse("{}").unwrap();
        assert_eq!(s, Settings::default().report_every(1));
        let s = PageSettings::parse(
            r#"{"size": 64, "iterations": 7, "strength": 0.25, "optimizer": "adam",
                "preview_every": 2}"#,
        )
        .unwrap();
        assert_eq!((s.size, s.iterations, s.snapshot_every), (64, 7, 2));
        assert_eq!(s.optimizer, Optimizer::Adam);
        assert_eq!(s.loss, LossConfig::default().with_strength(0.25).unwrap());
    }

    #[test]
    fn bad_page_settings_name_the_setting() {
        for (json, what) in [
            (r#"{"optimizer": "sgd"}"#, "optimizer"),
            (r#"{"strength": 2}"#, "strength"),
            (r#"{"size": 0}"#, "size"),
            (r#"{"iterations": 0}"#, "iterations"),
            (r#"{"colour": 1}"#, "colour"),
            ("[", "the page's settings"),
        ] {
            let err = PageSettings::parse(json).unwrap_err();
            assert!(err.contains(what), "{json}: {err}");
        }
    }
}
