//! From a candidate region to the prompts LiteMedSAM takes: a 3D box, a seed mask, and the limit region
//! the 3D result is cut to.

use crate::anatomy::grid::HuGrid;
use crate::anatomy::organs::Region;
use crate::ops::mask::{dilate_box, fill_holes_slices};
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
    let limit = limit_of(region.coarse.clone(), grid);
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
    let use_model = !region.air_filled();
    Derived { boxes: vec![region.bbox], seed: Some(region.mask.clone()), limit, key_slice, use_model }
}

/// The limit of a lesion inside `region`: the organ with its holes filled slice by slice (a nodule is a
/// hole in the lungs' air), then widened like any limit.
pub fn lesion_limit(region: &Region, grid: &HuGrid) -> Vec<u8> {
    let mut filled = region.coarse.clone();
    fill_holes_slices(&mut filled, grid.dims(), 1);
    limit_of(filled, grid)
}

/// `coarse` dilated by `LIMIT_MARGIN_MM`, on the input grid.
fn limit_of(mut coarse: Vec<u8>, grid: &HuGrid) -> Vec<u8> {
    let radius = grid.spacing().map(|s| (LIMIT_MARGIN_MM / s).ceil() as usize);
    dilate_box(&mut coarse, grid.dims(), radius);
    grid.to_input(&coarse)
}
