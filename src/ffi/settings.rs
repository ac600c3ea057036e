//! Session settings for the next runs: policy, propagation axis, overlap rule and post-processing.

use super::error::{boundary, set_last_error};
use super::result::vxp_result;
use super::session::{done, vxp_session, with_session};
use crate::error::u32_enum;
use crate::pipeline::compose::Overlap;
use crate::pipeline::policy::Policy;
use crate::pipeline::postprocess::PostprocessOptions;
use crate::session::SessionOptions;

u32_enum! {
    /// Propagation policies for `vxp_session_set_policy`.
    #[repr(u32)]
    pub enum vxp_policy {
        /// The CVPR24 LiteMedSAM middle-out pipeline, voxel for voxel (later objects overwrite earlier ones).
        Reference = 1,
        /// Reliable-slice re-seeding and confidence fusion (the default; objects never overwrite each other).
        Reseed = 2,
        /// RESEED that never propagates past the prompts' slice range: for a box known to span the whole object.
        ReseedInBox = 3,
    }
}

impl From<vxp_policy> for Policy {
    fn from(p: vxp_policy) -> Self {
        match p {
            vxp_policy::Reference => Policy::Reference,
            vxp_policy::Reseed => Policy::best(),
            vxp_policy::ReseedInBox => Policy::reseed_in_box(),
        }
    }
}

u32_enum! {
    /// Where objects overlap, for `vxp_session_set_overlap`.
    #[repr(u32)]
    pub enum vxp_overlap {
        /// The policy's default: OVERWRITE for the reference policy, KEEP otherwise.
        Default = 0,
        /// Later objects overwrite earlier ones.
        Overwrite = 1,
        /// A voxel keeps the first object that claimed it.
        Keep = 2,
        /// The object with the higher probability wins.
        Confidence = 3,
    }
}

/// `None` is the policy's default.
impl From<vxp_overlap> for Option<Overlap> {
    fn from(o: vxp_overlap) -> Self {
        match o {
            vxp_overlap::Default => None,
            vxp_overlap::Overwrite => Some(Overlap::Overwrite),
            vxp_overlap::Keep => Some(Overlap::Keep),
            vxp_overlap::Confidence => Some(Overlap::Confidence),
        }
    }
}

fn set_opts(session: *mut vxp_session, f: impl FnOnce(&mut SessionOptions) -> Result<(), String>) -> vxp_result {
    with_session(session, |s| {
        let mut o = *s.options();
        if let Err(msg) = f(&mut o) {
            set_last_error(msg);
            return vxp_result::InvalidArgument;
        }
        done(s.set_options(o))
    })
}

/// Chooses the propagation policy (a `vxp_policy`) for the next runs; objects computed under another
/// policy are recomputed by the next run.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (unknown policy).
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_set_policy(session: *mut vxp_session, policy: u32) -> vxp_result {
    boundary(|| {
        set_opts(session, |o| {
            o.policy = vxp_policy::try_from(policy).map_err(|p| format!("policy {p} is not a vxp_policy"))?.into();
            Ok(())
        })
    })
}

/// Chooses the propagation axis for the next runs: 2 = slices along k (the default, as the reference), 1 =
/// along j, 0 = along i (sagittal or coronal acquisitions). Prompts stay in voxel indices of the volume.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (axis > 2).
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_set_axis(session: *mut vxp_session, axis: u32) -> vxp_result {
    boundary(|| {
        set_opts(session, |o| {
            if axis > 2 {
                return Err(format!("propagation axis {axis} is not 0, 1 or 2"));
            }
            o.axis = axis as u8;
            Ok(())
        })
    })
}

/// Chooses which object wins where masks overlap (a `vxp_overlap`).
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (unknown rule).
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_set_overlap(session: *mut vxp_session, rule: u32) -> vxp_result {
    boundary(|| {
        set_opts(session, |o| {
            o.overlap =
                vxp_overlap::try_from(rule).map_err(|r| format!("overlap rule {r} is not a vxp_overlap"))?.into();
            Ok(())
        })
    })
}

/// Post-processing of every object after its policy: keep only the largest 3D connected component
/// (26-connected), fill holes (per slice, then in 3D), remove 3D components smaller than `min_size` voxels
/// (0 = off). All off by default beyond what the policy itself does.
///
/// Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_set_postprocess(
    session: *mut vxp_session,
    keep_largest: bool,
    fill_holes: bool,
    min_size: u64,
) -> vxp_result {
    boundary(|| {
        set_opts(session, |o| {
            o.postprocess = PostprocessOptions::new()
                .with_keep_largest(keep_largest)
                .with_fill_holes(fill_holes)
                .with_min_size(min_size as usize);
            Ok(())
        })
    })
}
