//! The session's objects: each object's prompts and, once run, its result with what it was computed from.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::pipeline::policy::Policy;
use crate::pipeline::postprocess::PostprocessOptions;
use crate::pipeline::result::StackResult;
use crate::prompt::{ObjectPrompts, PointIjk, Prompt, PromptKind};
use crate::volume::BoxIjk;

/// One object's result and the settings and prompts it was computed from.
#[derive(Debug, Clone)]
pub struct ObjectResult {
    pub policy: Policy,
    pub postprocess: PostprocessOptions,
    pub prompts: ObjectPrompts,
    pub stack: StackResult,
}

#[derive(Debug, Clone)]
pub struct ObjectState {
    pub prompts: ObjectPrompts,
    pub result: Option<ObjectResult>,
}

/// The objects of a session, in the order they were first prompted (later objects overwrite earlier ones
/// under the reference's overlap rule).
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub list: Vec<ObjectState>,
}

impl Objects {
    /// The object with `label`, created on first use.
    fn get_or_create(&mut self, label: u8) -> Result<&mut ObjectState> {
        if label == 0 {
            return Err(Error::InvalidPrompt("label 0 is the background".into()));
        }
        if let Some(i) = self.list.iter().position(|o| o.prompts.label == label) {
            return Ok(&mut self.list[i]);
        }
        if self.list.len() >= 255 {
            return Err(Error::InvalidPrompt("at most 255 objects fit a u8 label mask".into()));
        }
        self.list.push(ObjectState { prompts: ObjectPrompts::new(label), result: None });
        Ok(self.list.last_mut().expect("pushed"))
    }

    fn existing(&mut self, label: u8) -> Result<&mut ObjectState> {
        self.list
            .iter_mut()
            .find(|o| o.prompts.label == label)
            .ok_or_else(|| Error::InvalidArgument(format!("no object has label {label}")))
    }

    /// Adds a 3D box (inclusive voxel indices, already checked against the volume) to object `label`.
    pub fn add_box(&mut self, label: u8, b: BoxIjk) -> Result<()> {
        let o = self.get_or_create(label)?;
        let kind = PromptKind::Box(b);
        if o.prompts.contains(&kind) {
            return Err(Error::InvalidPrompt(format!("object {label} already has the box {:?}..{:?}", b.min, b.max)));
        }
        o.prompts.push(Prompt::user(kind));
        Ok(())
    }

    /// Adds a positive or negative point (already checked against the volume) to object `label`.
    pub fn add_point(&mut self, label: u8, p: PointIjk) -> Result<()> {
        let o = self.get_or_create(label)?;
        let kind = PromptKind::Point(p);
        if o.prompts.contains(&kind) {
            return Err(Error::InvalidPrompt(format!("object {label} already has this point at {:?}", p.ijk)));
        }
        o.prompts.push(Prompt::user(kind));
        Ok(())
    }

    /// Removes the most recent point of `label` at `ijk`.
    pub fn remove_point(&mut self, label: u8, ijk: [usize; 3]) -> Result<()> {
        if !self.existing(label)?.prompts.remove_point(ijk) {
            return Err(Error::InvalidArgument(format!("object {label} has no point at {ijk:?}")));
        }
        Ok(())
    }

    /// Sets the seed mask (0/1 on the input grid) of `label`, replacing any earlier one.
    pub fn set_seed(&mut self, label: u8, mask: Arc<Vec<u8>>) -> Result<()> {
        self.get_or_create(label)?.prompts.push(Prompt::user(PromptKind::Seed(mask)));
        Ok(())
    }

    /// Adds derived prompts (a resolved text prompt's) to object `label`, creating it if needed.
    pub fn push_all(&mut self, label: u8, prompts: Vec<Prompt>) -> Result<()> {
        let o = self.get_or_create(label)?;
        for p in prompts {
            o.prompts.push(p);
        }
        Ok(())
    }

    /// The prompts of `label` so far (empty for a new object).
    pub fn prompts_of(&self, label: u8) -> ObjectPrompts {
        self.list
            .iter()
            .find(|o| o.prompts.label == label)
            .map(|o| o.prompts.clone())
            .unwrap_or_else(|| ObjectPrompts::new(label))
    }

    pub fn remove(&mut self, label: u8) -> Result<()> {
        let before = self.list.len();
        self.list.retain(|o| o.prompts.label != label);
        if self.list.len() == before {
            return Err(Error::InvalidArgument(format!("no object has label {label}")));
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.list.clear();
    }
}
