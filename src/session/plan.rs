//! What a run has to do: which objects start over, which are refined, which are left as they are.

use super::objects::ObjectState;
use crate::pipeline::policy::Policy;
use crate::pipeline::postprocess::PostprocessOptions;
use crate::prompt::{diff, Change};

/// Indices into the session's objects, and the labels of those left unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub full: Vec<usize>,
    pub refine: Vec<usize>,
    pub unchanged: Vec<u8>,
}

impl Plan {
    /// An object starts over when it has no result, or its result was computed along another axis, under
    /// another policy or post-processing, or from other boxes, seed, text or hints; it is refined when
    /// only its points changed.
    pub fn of(objects: &[ObjectState], axis: u8, policy: Policy, postprocess: PostprocessOptions) -> Plan {
        let mut plan = Plan::default();
        for (k, o) in objects.iter().enumerate() {
            let change = match &o.result {
                Some(r) if r.stack.orientation.axis() == axis && r.policy == policy && r.postprocess == postprocess => {
                    diff(&r.prompts, &o.prompts)
                }
                _ => Change::Start,
            };
            match change {
                Change::None => plan.unchanged.push(o.prompts.label),
                Change::Points => plan.refine.push(k),
                Change::Start => plan.full.push(k),
            }
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.full.is_empty() && self.refine.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::result::StackResult;
    use crate::prompt::{ObjectPrompts, PointIjk, Prompt, PromptKind};
    use crate::session::objects::ObjectResult;
    use crate::volume::reslice::Orientation;
    use crate::volume::BoxIjk;

    fn object(label: u8, points: usize, result_points: Option<usize>, axis: u8) -> ObjectState {
        let mk = |n: usize| {
            let mut p = ObjectPrompts::new(label);
            p.push(Prompt::user(PromptKind::Box(BoxIjk { min: [0; 3], max: [3; 3] })));
            for i in 0..n {
                p.push(Prompt::user(PromptKind::Point(PointIjk { ijk: [i, 0, 0], positive: true })));
            }
            p
        };
        ObjectState {
            prompts: mk(points),
            result: result_points.map(|n| ObjectResult {
                policy: Policy::Reference,
                postprocess: PostprocessOptions::new(),
                prompts: mk(n),
                stack: StackResult { orientation: Orientation::new(axis).unwrap(), slices: Vec::new() },
            }),
        }
    }

    #[test]
    fn objects_are_sorted_by_what_changed() {
        let objs =
            [object(1, 0, None, 2), object(2, 1, Some(1), 2), object(3, 2, Some(1), 2), object(4, 0, Some(0), 1)];
        let plan = Plan::of(&objs, 2, Policy::Reference, PostprocessOptions::new());
        assert_eq!(plan, Plan { full: vec![0, 3], refine: vec![2], unchanged: vec![2] });
        let other = Plan::of(&objs, 2, Policy::best(), PostprocessOptions::new());
        assert_eq!(other.full, vec![0, 1, 2, 3]);
        let pp = PostprocessOptions::new().with_keep_largest(true);
        assert_eq!(Plan::of(&objs[1..2], 2, Policy::Reference, pp).full, vec![0]);
        assert!(Plan::of(&objs[1..2], 2, Policy::Reference, PostprocessOptions::new()).is_empty());
    }
}
