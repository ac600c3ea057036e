//! Checkpoints for undo and redo: the objects after each successful run. Slices are shared between
//! checkpoints (`Arc`), so a refinement's checkpoint costs only the slices it changed.

use std::collections::VecDeque;

use super::objects::Objects;
use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct History {
    states: VecDeque<Objects>,
    /// `states[pos]` is the state the session is at right after a run, undo or redo.
    pos: usize,
    /// Prompts or options changed since then.
    dirty: bool,
}

impl History {
    /// Prompts or options changed: undo first drops those edits.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    pub fn can_undo(&self) -> bool {
        self.pos > 0 || (self.dirty && !self.states.is_empty())
    }

    pub fn can_redo(&self) -> bool {
        self.pos + 1 < self.states.len()
    }

    /// Records `state` after a successful run; states undone before it are dropped, and the oldest beyond
    /// `keep` are forgotten.
    pub fn checkpoint(&mut self, state: Objects, keep: usize) {
        self.states.truncate(if self.states.is_empty() { 0 } else { self.pos + 1 });
        self.states.push_back(state);
        while self.states.len() > keep.max(1) {
            self.states.pop_front();
        }
        self.pos = self.states.len() - 1;
        self.dirty = false;
    }

    /// The state to return to: the last checkpoint when edits are pending, else the one before it.
    pub fn undo(&mut self) -> Result<Objects> {
        if !self.can_undo() {
            return Err(Error::NothingToUndo("nothing to undo".into()));
        }
        if !self.dirty {
            self.pos -= 1;
        }
        self.dirty = false;
        Ok(self.states[self.pos].clone())
    }

    /// The state that `undo` left.
    pub fn redo(&mut self) -> Result<Objects> {
        if !self.can_redo() {
            return Err(Error::NothingToUndo("nothing to redo".into()));
        }
        self.pos += 1;
        self.dirty = false;
        Ok(self.states[self.pos].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::BoxIjk;

    fn state(n: usize) -> Objects {
        let mut o = Objects::default();
        for k in 0..n {
            o.add_box(k as u8 + 1, BoxIjk { min: [0; 3], max: [1; 3] }).unwrap();
        }
        o
    }

    #[test]
    fn undo_drops_pending_edits_first_then_steps_back_and_redo_forward() {
        let mut h = History::default();
        assert!(!h.can_undo() && !h.can_redo());
        h.checkpoint(state(1), 8);
        h.checkpoint(state(2), 8);
        h.touch();
        assert_eq!(h.undo().unwrap().list.len(), 2, "pending edits dropped: back to the last run");
        assert_eq!(h.undo().unwrap().list.len(), 1);
        assert!(!h.can_undo());
        assert_eq!(h.redo().unwrap().list.len(), 2);
        assert!(h.redo().is_err());
        h.undo().unwrap();
        h.checkpoint(state(3), 8);
        assert!(!h.can_redo(), "a new run drops what was undone");
        assert_eq!(h.undo().unwrap().list.len(), 1);
    }

    #[test]
    fn only_the_newest_checkpoints_are_kept() {
        let mut h = History::default();
        for n in 1..=5 {
            h.checkpoint(state(n), 3);
        }
        assert_eq!(h.undo().unwrap().list.len(), 4);
        assert_eq!(h.undo().unwrap().list.len(), 3);
        assert_eq!(h.undo().err().unwrap().code(), crate::ErrorCode::NothingToUndo);
    }
}
