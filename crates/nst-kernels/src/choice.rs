//! Which variant of a tuned kernel each class of launch uses: the winners autotuning found,
//! and a default for an adapter nothing was tuned on.

use crate::{Context, ConvClass, ConvKernel, GramClass, GramTiles};

/// What a tuned launch is classed by: its direction, and how far it is from another class
/// of the same direction, for picking the nearest tuned one.
pub trait LaunchClass {
    /// Whether the class is of a backward launch.
    fn backward(&self) -> bool;
    /// How far apart two classes are.
    fn distance(&self, other: &Self) -> f64;
}

/// Which variant `V` each class `C` of launch uses: the tuned winners, and a default for an
/// adapter nothing was tuned on. A class without an entry takes the nearest tuned class of
/// its direction.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice<C, V> {
    /// Used when `tuned` has no class of the launch's direction.
    pub default: V,
    /// The winners per class.
    pub tuned: Vec<(C, V)>,
}

/// Which kernel each class of convolution launch uses.
pub type ConvChoice = Choice<ConvClass, ConvKernel>;

/// Which tiles each class of Gram launch uses.
pub type GramChoice = Choice<GramClass, GramTiles>;

impl<C: LaunchClass, V: Copy + PartialEq> Choice<C, V> {
    /// Every class on `variant`.
    pub fn all(variant: V) -> Self {
        Choice {
            default: variant,
            tuned: Vec::new(),
        }
    }

    /// The variant for `class`.
    pub fn pick(&self, class: &C) -> V {
        self.tuned
            .iter()
            .filter(|(c, _)| c.backward() == class.backward())
            .min_by(|a, b| a.0.distance(class).total_cmp(&b.0.distance(class)))
            .map_or(self.default, |&(_, v)| v)
    }

    /// Every distinct variant it may pick, the default first.
    pub fn variants(&self) -> Vec<V> {
        let mut all = vec![self.default];
        for &(_, v) in &self.tuned {
            if !all.contains(&v) {
                all.push(v);
            }
        }
        all
    }
}

/// Which variant of each tuned kernel every class of launch uses.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelChoice {
    /// The convolutions'.
    pub conv: ConvChoice,
    /// The Gram matrices'.
    pub gram: GramChoice,
}

impl KernelChoice {
    /// The built-in choice for an adapter nothing was tuned on.
    pub fn builtin(ctx: &Context) -> Self {
        KernelChoice {
            conv: ConvChoice::all(ConvKernel::default_for(ctx)),
            gram: GramChoice::all(GramTiles::default()),
        }
    }
}
