//! What the pipeline asks of a model, per model family. Drivers in `pipeline/` borrow a model through these
//! traits and never own it (usls: "`Model` does NOT own `Engine`"); the hot loops are generic over them, so
//! no call goes through a trait object.

use std::sync::Arc;

use crate::error::Result;

/// Which sessions of a model run a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worker {
    /// The sessions of worker `n` (modulo the model's worker count), each with its share of the threads.
    Index(usize),
    /// The all-threads sessions, for work that runs alone (interactive refinement); worker 0's when the
    /// model has no such sessions.
    Wide,
}

/// The shapes of the tensors one encoded slice consists of (SAM: one image embedding; SAM2: the embedding
/// plus two high-resolution feature maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingLayout {
    pub tensors: Vec<(String, Vec<usize>)>,
}

impl EmbeddingLayout {
    /// Values of each tensor.
    pub fn lens(&self) -> Vec<usize> {
        self.tensors.iter().map(|(_, s)| s.iter().product()).collect()
    }
    /// Bytes of one encoded slice.
    pub fn bytes(&self) -> usize {
        self.lens().iter().sum::<usize>() * std::mem::size_of::<f32>()
    }
    /// A zeroed embedding of this layout.
    pub fn zeros(&self) -> Embedding {
        Embedding { tensors: self.lens().into_iter().map(|n| vec![0f32; n]).collect() }
    }
}

/// One encoded slice: its tensors in the order of the model's `EmbeddingLayout`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub tensors: Vec<Vec<f32>>,
}

impl Embedding {
    pub fn bytes(&self) -> usize {
        self.tensors.iter().map(Vec::len).sum::<usize>() * std::mem::size_of::<f32>()
    }
}

/// One prompt for one object on one slice, in the model's input frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt2d {
    /// (x, y, label) with label 1 = positive, 0 = negative.
    pub points: Vec<(f32, f32, f32)>,
    /// x0, y0, x1, y1.
    pub bbox: Option<[f32; 4]>,
    /// Previous low-res logits (S×S).
    pub mask: Option<Vec<f32>>,
    /// The object's text embedding, for a model that takes one (`Conditioned::text_dim` values).
    pub text: Option<Arc<Vec<f32>>>,
    /// The object's anatomical region on this slice in the model frame (S×S, 0..1), for a model that
    /// takes one.
    pub anatomy: Option<Vec<f32>>,
}

impl Prompt2d {
    pub fn from_box(b: [f32; 4]) -> Self {
        Prompt2d { bbox: Some(b), ..Default::default() }
    }
}

/// Decoder output for one prompt.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// S×S low-resolution logits.
    pub logits: Vec<f32>,
    pub iou: f32,
}

/// What a slice model takes beyond the prompt encoder's inputs (a package's `[conditioning]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conditioned {
    /// The width of the text embedding it takes, if any.
    pub text_dim: Option<usize>,
    /// Whether it takes the object's anatomical region.
    pub anatomy: bool,
}

/// A promptable 2D model that the slice pipeline lifts to 3D: slices are encoded once into an embedding
/// (cached per session), then decoded once per prompt.
pub trait SliceModel: Send + Sync {
    /// The square input side S: the longest side of a slice is resized to it.
    fn input_size(&self) -> usize;
    /// Image channels the encoder takes (the grey slice repeated).
    fn channels(&self) -> usize;
    /// Pixels of the input frame that propagation grows the previous mask's box by.
    fn box_shift(&self) -> i64;
    /// An upsampled logit above this is inside the mask.
    fn mask_threshold(&self) -> f32;
    fn embedding_layout(&self) -> &EmbeddingLayout;
    /// How many slices can be encoded and decoded concurrently.
    fn workers(&self) -> usize;
    /// The conditioning inputs the decoder takes (none by default).
    fn conditioned(&self) -> Conditioned {
        Conditioned::default()
    }
    /// Encodes one preprocessed image (channels×S×S, CHW) into `out`.
    fn encode(&self, worker: Worker, image: &[f32], out: &mut Embedding) -> Result<()>;
    /// Decodes several prompts against one embedding, batched as the model allows.
    fn decode(&self, worker: Worker, embedding: &Embedding, prompts: &[Prompt2d]) -> Result<Vec<Decoded>>;
}

/// A prompt-free 2D model over canvases of tiled slices (SFR's mosaics, METHODS §4.2–4.3): one run per
/// canvas gives 2-class logits at its output side, which the mosaic pipeline upsamples, softmaxes and
/// un-tiles.
pub trait CanvasModel: Send + Sync {
    /// The canvas side S.
    fn input_size(&self) -> usize;
    /// The logits' side O (upsampled bilinearly to S).
    fn output_size(&self) -> usize;
    /// Image channels (the grey canvas repeated).
    fn channels(&self) -> usize;
    /// Which of the 2 logit channels is the object.
    fn foreground(&self) -> usize;
    /// How many canvases can run concurrently.
    fn workers(&self) -> usize;
    /// Runs one canvas (channels×S×S, CHW) and writes its logits (2×O×O) into `logits`.
    fn segment(&self, worker: Worker, image: &[f32], logits: &mut [f32]) -> Result<()>;
}

/// A 3D prompt for a patch model, in patch voxel coordinates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt3d {
    /// (i, j, k, label) with label 1 = positive, 0 = negative.
    pub points: Vec<([f32; 3], f32)>,
    /// Inclusive corners.
    pub bbox: Option<([f32; 3], [f32; 3])>,
    /// The previous low-resolution logits of this patch, when the model takes them.
    pub mask: Option<Vec<f32>>,
}

/// A native 3D promptable model that runs on fixed-size patches at its own spacing (SAM-Med3D style;
/// METHODS §2). The volumetric driver resamples, crops, windows and pastes back around it.
pub trait PatchModel: Send + Sync {
    /// Patch size in voxels (i, j, k).
    fn patch_size(&self) -> [usize; 3];
    /// The voxel spacing (mm) the model was trained at.
    fn spacing(&self) -> [f64; 3];
    /// Segments one normalised patch; writes logits at patch resolution into `logits`, returns the
    /// model's quality estimate.
    fn segment(&self, patch: &[f32], prompt: &Prompt3d, logits: &mut [f32]) -> Result<f32>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedding_layout_sizes_every_tensor() {
        let l = EmbeddingLayout {
            tensors: vec![("image_embeddings".into(), vec![256, 64, 64]), ("high_res_0".into(), vec![32, 256, 256])],
        };
        assert_eq!(l.lens(), vec![256 * 64 * 64, 32 * 256 * 256]);
        assert_eq!(l.bytes(), (256 * 64 * 64 + 32 * 256 * 256) * 4);
        let e = l.zeros();
        assert_eq!(e.tensors.len(), 2);
        assert_eq!(e.bytes(), l.bytes());
    }
}
