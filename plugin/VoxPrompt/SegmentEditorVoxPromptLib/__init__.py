"""The VoxPrompt Segment Editor effect (SegmentEditorEffect.py), registered by the VoxPrompt module at start-up."""
