//! The check that a graph is what its manifest says: the same input and output names, element types and
//! ranks, and every dimension the manifest fixes fixed to the same value in the graph. A package that fails
//! is refused at load with a message naming the tensor and the mismatch, so another model of the same kind
//! either works without code changes or does not load at all.

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::manifest::{ElementType, Graph, TensorSpec};
use crate::error::{Error, Result};

fn element(t: TensorElementType) -> Option<ElementType> {
    Some(match t {
        TensorElementType::Float32 => ElementType::F32,
        TensorElementType::Float16 => ElementType::F16,
        TensorElementType::Float64 => ElementType::F64,
        TensorElementType::Int64 => ElementType::I64,
        TensorElementType::Int32 => ElementType::I32,
        TensorElementType::Int8 => ElementType::I8,
        TensorElementType::Uint8 => ElementType::U8,
        TensorElementType::Bool => ElementType::Bool,
        _ => return None,
    })
}

/// A graph-side tensor as the contract compares it: name, element type (None: one no manifest can name),
/// and dims (-1 where the graph leaves them free).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphTensor {
    pub name: String,
    pub dtype: Option<ElementType>,
    pub dims: Vec<i64>,
    pub is_tensor: bool,
}

impl GraphTensor {
    fn of(name: &str, t: &ValueType) -> GraphTensor {
        match t {
            ValueType::Tensor { ty, shape, .. } => GraphTensor {
                name: name.to_owned(),
                dtype: element(*ty),
                dims: shape.iter().copied().collect(),
                is_tensor: true,
            },
            _ => GraphTensor { name: name.to_owned(), dtype: None, dims: Vec::new(), is_tensor: false },
        }
    }
}

/// The inputs and outputs of a built session.
pub fn session_io(session: &Session) -> (Vec<GraphTensor>, Vec<GraphTensor>) {
    let ins = session.inputs().iter().map(|o| GraphTensor::of(o.name(), o.dtype())).collect();
    let outs = session.outputs().iter().map(|o| GraphTensor::of(o.name(), o.dtype())).collect();
    (ins, outs)
}

/// Checks one graph against its manifest entry and the names its kind needs. `what` names the graph in
/// messages ("litemedsam encoder").
pub fn check(
    what: &str,
    spec: &Graph,
    graph: (&[GraphTensor], &[GraphTensor]),
    needs: (&[&str], &[&str]),
) -> Result<()> {
    for (dir, declared, actual, needed) in
        [("input", &spec.inputs, graph.0, needs.0), ("output", &spec.outputs, graph.1, needs.1)]
    {
        for n in needed {
            if !declared.iter().any(|d| d.name == *n) {
                return Err(Error::ModelContract(format!(
                    "{what}: {dir} {n:?} is required by the model kind; the manifest declares {:?}",
                    names(declared)
                )));
            }
        }
        for a in actual {
            if !declared.iter().any(|d| d.name == a.name) {
                return Err(Error::ModelContract(format!(
                    "{what}: the graph has {dir} {:?}, which the manifest does not declare (it declares {:?})",
                    a.name,
                    names(declared)
                )));
            }
        }
        for d in declared {
            let Some(a) = actual.iter().find(|a| a.name == d.name) else {
                return Err(Error::ModelContract(format!(
                    "{what}: the manifest declares {dir} {:?}, which the graph does not have (it has {:?})",
                    d.name,
                    actual.iter().map(|a| a.name.as_str()).collect::<Vec<_>>()
                )));
            };
            check_tensor(what, dir, d, a)?;
        }
    }
    Ok(())
}

fn names(v: &[TensorSpec]) -> Vec<&str> {
    v.iter().map(|s| s.name.as_str()).collect()
}

fn check_tensor(what: &str, dir: &str, d: &TensorSpec, a: &GraphTensor) -> Result<()> {
    let name = &d.name;
    if !a.is_tensor {
        return Err(Error::ModelContract(format!("{what}: {dir} {name:?} is not a tensor in the graph")));
    }
    if a.dtype != Some(d.dtype) {
        return Err(Error::ModelContract(format!(
            "{what}: {dir} {name:?} is {} in the manifest but {} in the graph",
            d.dtype.name(),
            a.dtype.map_or("an element type the manifest cannot name", |t| t.name())
        )));
    }
    if a.dims.len() != d.shape.len() {
        return Err(Error::ModelContract(format!(
            "{what}: {dir} {name:?} has shape {:?} in the manifest but rank {} ({:?}) in the graph",
            d.shape,
            a.dims.len(),
            a.dims
        )));
    }
    for (i, (&m, &g)) in d.shape.iter().zip(&a.dims).enumerate() {
        // A dimension the manifest fixes must be that value or free in the graph; one the manifest leaves
        // free (-1) must be free in the graph too, or the engine would feed sizes the graph refuses.
        let ok = if m >= 0 { g == m || g < 0 } else { g < 0 };
        if !ok {
            return Err(Error::ModelContract(format!(
                "{what}: {dir} {name:?} dimension {i} is {m} in the manifest but {g} in the graph (shapes {:?} vs {:?})",
                d.shape, a.dims
            )));
        }
    }
    Ok(())
}

/// The shape of a declared tensor of `spec`, or a contract error naming it.
pub fn declared<'a>(what: &str, specs: &'a [TensorSpec], name: &str) -> Result<&'a TensorSpec> {
    specs
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| Error::ModelContract(format!("{what}: {name:?} is not declared")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, dtype: ElementType, shape: &[i64]) -> TensorSpec {
        TensorSpec { name: name.into(), dtype, shape: shape.to_vec() }
    }
    fn t(name: &str, dtype: ElementType, dims: &[i64]) -> GraphTensor {
        GraphTensor { name: name.into(), dtype: Some(dtype), dims: dims.to_vec(), is_tensor: true }
    }
    fn graph(inputs: Vec<TensorSpec>, outputs: Vec<TensorSpec>) -> Graph {
        Graph { file: "g.onnx".into(), sha256: String::new(), derived_from: None, inputs, outputs }
    }
    fn err(r: Result<()>) -> String {
        match r {
            Err(Error::ModelContract(m)) => m,
            other => panic!("expected a contract error, got {other:?}"),
        }
    }

    #[test]
    fn a_matching_graph_passes_and_free_graph_dims_take_the_manifests_value() {
        let g = graph(vec![spec("x", ElementType::F32, &[1, 3, 8, 8])], vec![spec("y", ElementType::F32, &[-1, 4])]);
        let ins = [t("x", ElementType::F32, &[1, 3, -1, 8])];
        let outs = [t("y", ElementType::F32, &[-1, 4])];
        check("m", &g, (&ins, &outs), (&["x"], &["y"])).unwrap();
    }

    #[test]
    fn every_kind_of_mismatch_is_named() {
        let g = graph(vec![spec("x", ElementType::F32, &[1, 3, 8, 8])], vec![spec("y", ElementType::F32, &[-1, 4])]);
        let outs = [t("y", ElementType::F32, &[-1, 4])];
        let run = |ins: &[GraphTensor], needs: &[&str]| err(check("m enc", &g, (ins, &outs), (needs, &["y"])));
        let e = run(&[t("x", ElementType::I64, &[1, 3, 8, 8])], &["x"]);
        assert!(e.contains("\"x\" is f32 in the manifest but i64 in the graph"), "{e}");
        let e = run(&[t("x", ElementType::F32, &[1, 3, 8, 9])], &["x"]);
        assert!(e.contains("dimension 3 is 8 in the manifest but 9 in the graph"), "{e}");
        let e = run(&[t("x", ElementType::F32, &[1, 3, 8])], &["x"]);
        assert!(e.contains("rank 3"), "{e}");
        let e = run(&[t("x", ElementType::F32, &[1, 3, 8, 8]), t("z", ElementType::F32, &[1])], &["x"]);
        assert!(e.contains("the graph has input \"z\", which the manifest does not declare"), "{e}");
        let e = run(&[t("w", ElementType::F32, &[1, 3, 8, 8])], &["x"]);
        assert!(e.contains("the graph has input \"w\""), "{e}");
        let e = run(&[t("x", ElementType::F32, &[1, 3, 8, 8])], &["x", "mask"]);
        assert!(e.contains("input \"mask\" is required by the model kind"), "{e}");
        let dyn_out =
            graph(vec![spec("x", ElementType::F32, &[1, 3, 8, 8])], vec![spec("y", ElementType::F32, &[-1, -1])]);
        let e = err(check("m", &dyn_out, (&[t("x", ElementType::F32, &[1, 3, 8, 8])], &outs), (&[], &[])));
        assert!(e.contains("dimension 1 is -1 in the manifest but 4 in the graph"), "{e}");
    }
}
