//! VGG-19 weights uploaded to the GPU once and shared by every graph built from them (one per
//! image size: the style images, each scale of a multi-scale run).

use crate::error::VggError;
use nst_gpu::{Context, View};
use nst_kernels::PixelTransform;
use nst_weights::{InputConvention, Vgg19Weights};

/// One convolution's parameters in GPU memory.
pub struct ConvWeights {
    /// Input channels.
    pub c_in: u32,
    /// Output channels.
    pub c_out: u32,
    /// `(c_out, c_in, 3, 3)`.
    pub weight: wgpu::Buffer,
    /// `c_out`.
    pub bias: wgpu::Buffer,
}

impl ConvWeights {
    /// The weight tensor, for binding.
    pub fn weight_view(&self) -> View<'_> {
        View::whole(&self.weight)
    }
    /// The bias, for binding.
    pub fn bias_view(&self) -> View<'_> {
        View::whole(&self.bias)
    }
}

/// The 16 convolutions of a VGG-19 (or of a smaller network with the same topology, as the
/// tests use) and the pixel convention they expect.
pub struct VggWeights {
    /// What input the weights expect.
    pub convention: InputConvention,
    /// The transform from RGB in [0, 1] to that input.
    pub transform: PixelTransform,
    /// `conv1_1` … `conv5_4`.
    pub convs: Vec<ConvWeights>,
}

impl VggWeights {
    /// Checks that `w` has VGG-19's topology (16 layers, 3 input channels, channels that
    /// chain, tensors of the right length) and uploads it. The channel counts may differ from
    /// VGG-19's.
    pub fn upload(ctx: &Context, w: &Vgg19Weights) -> Result<Self, VggError> {
        if w.layers.len() != 16 {
            return Err(VggError::BadWeights(format!(
                "{} convolution layers, VGG-19 has 16",
                w.layers.len()
            )));
        }
        let mut convs = Vec::with_capacity(16);
        let mut c_prev = 3;
        for l in &w.layers {
            if l.c_in != c_prev {
                return Err(VggError::BadWeights(format!(
                    "layer {} takes {} channels, the layer before gives {c_prev}",
                    l.name, l.c_in
                )));
            }
            if l.weight.len() != l.c_out * l.c_in * 9 || l.bias.len() != l.c_out {
                return Err(VggError::BadWeights(format!(
                    "layer {} has {} weights and {} biases for {}→{} channels",
                    l.name,
                    l.weight.len(),
                    l.bias.len(),
                    l.c_in,
                    l.c_out
                )));
            }
            convs.push(ConvWeights {
                c_in: l.c_in as u32,
                c_out: l.c_out as u32,
                weight: ctx.tensor_from(&format!("{} weight", l.name), &l.weight)?,
                bias: ctx.tensor_from(&format!("{} bias", l.name), &l.bias)?,
            });
            c_prev = l.c_out;
        }
        Ok(VggWeights {
            convention: w.convention,
            transform: transform_for(w.convention),
            convs,
        })
    }

    /// Output channels of each convolution.
    pub fn c_out(&self) -> Vec<u32> {
        self.convs.iter().map(|c| c.c_out).collect()
    }

    /// Bytes of GPU memory the weights take.
    pub fn bytes(&self) -> u64 {
        self.convs
            .iter()
            .map(|c| c.weight.size() + c.bias.size())
            .sum()
    }
}

/// The pixel transform for an input convention (which `nst_weights` defines).
pub fn transform_for(convention: InputConvention) -> PixelTransform {
    PixelTransform {
        perm: convention.channel_order(),
        scale: convention.scale(),
        offset: convention.offset(),
    }
}
