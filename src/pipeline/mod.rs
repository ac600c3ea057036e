//! Pipeline stages: preprocess → encode → decode → propagate → postprocess.
