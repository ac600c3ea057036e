//! Brain-MR anatomical prior: the MNI ICBM152 2009a T1 template is registered (rigid, then affine) onto
//! the subject, and FreeSurfer aseg labels are carried through world coordinates onto the subject grid.
//!
//! The chain for subject voxel v is `labels_ras_to_ijk · template_to_atlas · subject_to_template ·
//! subject_ijk_to_ras · v`, nearest label, so each grid's orientation (the template is RAS, covale's aseg
//! grid LAS, a subject anything) is honoured and nothing is ever compared array to array.
//!
//! The labels (covale's `aseg-auto`, FSL MNI152 6th generation) and the template (ICBM 2009a symmetric)
//! are different MNI releases; `template_to_atlas` (identity by default) is where a measured offset
//! between them goes. Measured once (tests/anatomy_brain.rs, template registered to a synthetic T1 made
//! from the labels): under 1 mm at the brain centre but about 3–5 % in scale, up to 3.2 mm 60 mm out; it
//! is reported, not applied, because a synthetic T1's contrast is too crude to trust at that level.
//! Which aseg values exist is fixed by the label volume; asking for another value is an error, not an
//! empty mask.
//!
//! The template is skull-stripped: a subject with skull and scalp pulls the affine towards shrinking
//! the head onto the brain (the scale bounds of `RegisterOptions` stop it at 1/1.25), so such volumes
//! want brain extraction first.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::io::nifti;
use crate::ops::register::{register, Affine, Image, Pyramid, RegisterOptions, Registration};
use crate::volume::{Geometry, Volume, VolumeView};

/// An integer label volume with its geometry.
#[derive(Debug)]
struct Labels {
    data: Vec<i32>,
    dims: [usize; 3],
    ras_to_ijk: Affine,
    /// The distinct non-zero values (the regions), sorted.
    present: Vec<i32>,
}

/// The template's pyramid and the atlas labels, loaded once and shared by every fit.
#[derive(Debug, Clone)]
pub struct BrainAtlas {
    template: Arc<Pyramid>,
    labels: Arc<Labels>,
    template_to_atlas: Affine,
    options: RegisterOptions,
}

/// Wall-clock cost of one [`BrainAtlas::register`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FitTiming {
    /// Converting the subject to `f32` and building its pyramid.
    pub prepare: Duration,
    /// The optimisation itself.
    pub optimise: Duration,
}

impl FitTiming {
    pub fn total(&self) -> Duration {
        self.prepare + self.optimise
    }
}

/// A subject's alignment to the atlas: where every subject voxel lands in label space.
#[derive(Debug, Clone)]
pub struct Fit {
    /// Subject world (RAS mm) → template world.
    pub subject_to_template: Affine,
    /// The optimiser's account, when this fit came from [`BrainAtlas::register`].
    pub registration: Option<Registration>,
    pub timing: FitTiming,
    dims: [usize; 3],
    /// Subject voxel → label-volume voxel (continuous index).
    voxel_to_label: Affine,
    labels: Arc<Labels>,
}

impl BrainAtlas {
    /// Reads the template T1 and the label volume (NIfTI) from disk.
    pub fn load(template: &Path, labels: &Path) -> Result<BrainAtlas> {
        let (t, _) = nifti::read(template)?;
        let (l, _) = nifti::read(labels)?;
        BrainAtlas::from_volumes(&t, &l)
    }

    pub fn from_volumes(template: &Volume, labels: &Volume) -> Result<BrainAtlas> {
        let options = RegisterOptions::default();
        let image = Image::from_view(&template.view()?)?;
        let pyramid = Pyramid::new(&image, &options.levels_mm)?;
        let view = labels.view()?;
        let mut data = Vec::with_capacity(labels.dims.iter().product());
        let mut fractional = None;
        view.for_each(|v| {
            if v.fract() != 0.0 && fractional.is_none() {
                fractional = Some(v);
            }
            data.push(v as i32);
        });
        if let Some(v) = fractional {
            return Err(Error::InvalidVolume(format!("the label volume holds a non-integer value {v}")));
        }
        let mut present = data.clone();
        present.sort_unstable();
        present.dedup();
        present.retain(|&v| v != 0);
        let ras_to_ijk = Affine(labels.geometry.ijk_to_ras)
            .inverse()
            .ok_or_else(|| Error::InvalidVolume("the label volume's IJK→RAS matrix is singular".into()))?;
        Ok(BrainAtlas {
            template: Arc::new(pyramid),
            labels: Arc::new(Labels { data, dims: labels.dims, ras_to_ijk, present }),
            template_to_atlas: Affine::IDENTITY,
            options,
        })
    }

    /// Registration settings; the template pyramid is rebuilt when the spacings change, so this needs the
    /// template again.
    pub fn with_options(mut self, template: &Volume, options: RegisterOptions) -> Result<BrainAtlas> {
        if options.levels_mm != self.options.levels_mm {
            let image = Image::from_view(&template.view()?)?;
            self.template = Arc::new(Pyramid::new(&image, &options.levels_mm)?);
        }
        self.options = options;
        Ok(self)
    }

    /// A correction from template world to label world (the two MNI releases' offset).
    pub fn with_template_to_atlas(mut self, map: Affine) -> BrainAtlas {
        self.template_to_atlas = map;
        self
    }

    pub fn options(&self) -> &RegisterOptions {
        &self.options
    }

    /// The region values the label volume holds (background 0 excluded), sorted.
    pub fn label_values(&self) -> &[i32] {
        &self.labels.present
    }

    /// Registers the template onto `subject` (any dtype, any orientation).
    pub fn register(&self, subject: &VolumeView<'_>) -> Result<Fit> {
        let t0 = Instant::now();
        let image = Image::from_view(subject)?;
        let pyramid = Pyramid::new(&image, &self.options.levels_mm)?;
        let prepare = t0.elapsed();
        let reg = register(&pyramid, &self.template, &self.options)?;
        let timing = FitTiming { prepare, optimise: reg.elapsed };
        let mut fit = self.fit_with_transform(subject.dims(), subject.geometry(), reg.fixed_to_moving)?;
        fit.registration = Some(reg);
        fit.timing = timing;
        Ok(fit)
    }

    /// A fit from a transform known by other means (a saved registration, or a test's ground truth).
    pub fn fit_with_transform(
        &self,
        dims: [usize; 3],
        geometry: &Geometry,
        subject_to_template: Affine,
    ) -> Result<Fit> {
        let voxel_to_label = self
            .labels
            .ras_to_ijk
            .then_after(&self.template_to_atlas)
            .then_after(&subject_to_template)
            .then_after(&Affine(geometry.ijk_to_ras));
        Ok(Fit {
            subject_to_template,
            registration: None,
            timing: FitTiming::default(),
            dims,
            voxel_to_label,
            labels: Arc::clone(&self.labels),
        })
    }
}

impl Fit {
    /// The subject-grid mask (1 inside, i fastest) of the union of aseg `label_values`.
    pub fn region_mask(&self, label_values: &[i32], dims: [usize; 3]) -> Result<Vec<u8>> {
        if dims != self.dims {
            return Err(Error::ShapeMismatch(format!(
                "mask dims {dims:?} differ from the fitted subject's {:?}",
                self.dims
            )));
        }
        if label_values.is_empty() {
            return Err(Error::InvalidArgument("no label values asked for".into()));
        }
        if let Some(v) = label_values.iter().find(|v| **v == 0 || self.labels.present.binary_search(v).is_err()) {
            return Err(Error::InvalidArgument(format!(
                "aseg label {v} is not a region of the atlas (regions: {:?})",
                self.labels.present
            )));
        }
        // Membership per label voxel once, so the per-subject-voxel work is one lookup.
        let member: Vec<bool> = self.labels.data.iter().map(|v| label_values.contains(v)).collect();
        let [lw, lh, ld] = self.labels.dims;
        let n = &self.voxel_to_label.0;
        let mut mask = vec![0u8; dims.iter().product()];
        let mut at = 0;
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                let base = [0, 1, 2].map(|r| n[r][1] * j as f64 + n[r][2] * k as f64 + n[r][3]);
                for i in 0..dims[0] {
                    let u = [0, 1, 2].map(|r| (base[r] + n[r][0] * i as f64).round());
                    if u[0] >= 0.0 && u[1] >= 0.0 && u[2] >= 0.0 {
                        let (x, y, z) = (u[0] as usize, u[1] as usize, u[2] as usize);
                        if x < lw && y < lh && z < ld && member[(z * lh + y) * lw + x] {
                            mask[at] = 1;
                        }
                    }
                    at += 1;
                }
            }
        }
        Ok(mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::DType;

    /// A 10×6×6 label grid stored LAS (i runs right to left), world x from +4.5 to −4.5: label 17 on the
    /// world-left half, 53 on the right.
    fn las_labels() -> Volume {
        let dims = [10, 6, 6];
        let mut data = Vec::new();
        for _k in 0..6 {
            for _j in 0..6 {
                for i in 0..10 {
                    let x = 4.5 - i as f64;
                    data.push(if x < 0.0 { 17u8 } else { 53 });
                }
            }
        }
        let g = Geometry {
            spacing: [1.0; 3],
            ijk_to_ras: [[-1.0, 0.0, 0.0, 4.5], [0.0, 1.0, 0.0, -2.5], [0.0, 0.0, 1.0, -2.5], [0.0, 0.0, 0.0, 1.0]],
        };
        Volume { data, dtype: DType::U8, dims, geometry: g }
    }

    fn ras_template() -> Volume {
        let dims = [10, 6, 6];
        let data: Vec<u8> = (0..360).map(|i| (i % 7) as u8 * 30).collect();
        let g = Geometry {
            spacing: [1.0; 3],
            ijk_to_ras: [[1.0, 0.0, 0.0, -4.5], [0.0, 1.0, 0.0, -2.5], [0.0, 0.0, 1.0, -2.5], [0.0, 0.0, 0.0, 1.0]],
        };
        Volume { data, dtype: DType::U8, dims, geometry: g }
    }

    #[test]
    fn labels_travel_through_world_coordinates_not_arrays() {
        let atlas = BrainAtlas::from_volumes(&ras_template(), &las_labels()).unwrap();
        assert_eq!(atlas.label_values(), &[17, 53]);
        // A RAS subject grid: left (x < 0) is low i, so label 17 must fill i < 5 although it sits at
        // high i in the LAS label array.
        let g = ras_template().geometry;
        let fit = atlas.fit_with_transform([10, 6, 6], &g, Affine::IDENTITY).unwrap();
        let left = fit.region_mask(&[17], [10, 6, 6]).unwrap();
        for (idx, &m) in left.iter().enumerate() {
            assert_eq!(m == 1, idx % 10 < 5, "voxel {idx}");
        }
        // A 2 mm shift to the right in the subject→template map moves the boundary by two voxels.
        let mut shift = Affine::IDENTITY;
        shift.0[0][3] = 2.0;
        let fit = atlas.fit_with_transform([10, 6, 6], &g, shift).unwrap();
        let left = fit.region_mask(&[17], [10, 6, 6]).unwrap();
        assert_eq!(left.iter().take(10).map(|&v| v as usize).sum::<usize>(), 3);
    }

    #[test]
    fn unknown_labels_and_wrong_dims_are_errors() {
        let atlas = BrainAtlas::from_volumes(&ras_template(), &las_labels()).unwrap();
        let fit = atlas.fit_with_transform([10, 6, 6], &ras_template().geometry, Affine::IDENTITY).unwrap();
        let e = fit.region_mask(&[99], [10, 6, 6]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(ref m) if m.contains("99") && m.contains("[17, 53]")), "{e}");
        assert!(matches!(fit.region_mask(&[17], [10, 6, 5]), Err(Error::ShapeMismatch(_))));
        assert!(matches!(fit.region_mask(&[], [10, 6, 6]), Err(Error::InvalidArgument(_))));
    }
}
