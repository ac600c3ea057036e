//! VoxPrompt: prompt-driven 3D segmentation with SAM-family models on ONNX Runtime.
pub mod pipeline;
