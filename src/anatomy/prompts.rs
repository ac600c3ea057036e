//! From a candidate region to the prompts LiteMedSAM takes: a 3D box, a seed mask, and the limit region
//! the 3D result is cut to.

use crate::anatomy::grid::HuGrid;
use crate::anatomy::organs::Region;
use crate::anatomy::priors::{self, Kind};
use crate::ops::mask::dilate_box;
use crate::volume::BoxIjk;

/// How far (mm) the limit region reaches beyond the candidate: the prior's edges are a few coarse voxels
/// off, and LiteMedSAM should be free to find the true boundary within that.
pub const LIMIT_MARGIN_MM: f64 = 12.0;

/// Prompts derived from a region, all on the input grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// 3D boxes (inclusive), one per object: the session propagates middle-out from each box's middle slice
    /// along the propagation axis and stays within its range.
    pub boxes: Vec<BoxIjk>,
    /// The region itself as a seed mask (i fastest, 1 = inside).
    pub seed: Option<Vec<u8>>,
    /// The region dilated by `LIMIT_MARGIN_MM` (i fastest, 1 = inside): keep the model's mask inside it.
    pub limit: Vec<u8>,
    /// The slice along the propagation axis where the region is widest: the best single-slice prompt.
    pub key_slice: usize,
    /// Whether the model should be run at all. False for the lungs: under the CT soft-tissue mapping
    /// the lungs map to black and LiteMedSAM returns nothing from any box (measured on cases A and A-full
    /// with the reference box too), while the air-in-body mask is already the answer.
    pub use_model: bool,
}

/// Derives the prompts of `region` (found on `grid`) for propagation along input axis `axis` (0, 1 or 2).
///
/// # Panics
/// If `axis > 2` or `region` does not belong to `grid`.
pub fn derive_prompts(region: &Region, grid: &HuGrid, axis: usize) -> Derived {
    assert!(axis < 3, "propagation axis {axis} is not 0, 1 or 2");
    let dims = grid.input_dims();
    assert_eq!(region.mask.len(), dims.iter().product::<usize>(), "region mask does not match the grid");
    let mut wide = region.coarse.clone();
    let radius = grid.spacing().map(|s| (LIMIT_MARGIN_MM / s).ceil() as usize);
    dilate_box(&mut wide, grid.dims(), radius);
    let limit = grid.to_input(&wide);
    let mut area = vec![0usize; dims[axis]];
    let mut at = 0;
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                if region.mask[at] != 0 {
                    area[[i, j, k][axis]] += 1;
                }
                at += 1;
            }
        }
    }
    let key_slice = (0..dims[axis]).max_by_key(|&s| (area[s], std::cmp::Reverse(s))).unwrap_or(0);
    let use_model = priors::get(&region.structure).is_none_or(|p| p.kind != Kind::Lung);
    Derived { boxes: vec![region.bbox], seed: Some(region.mask.clone()), limit, key_slice, use_model }
}
