//! The `openvino` provider: a sam2d image encoder on OpenVINO's CPU plugin, called through its C API.
//!
//! Only the encoder, where nearly all the time goes; the decoder stays on ONNX Runtime. OpenVINO reads the
//! package's standard-op graph (`encoder_export` when the package has one: the fused graph's
//! `com.microsoft` attention is ONNX Runtime's own). Its CPU plugin defaults to bf16 on CPUs that have it,
//! which changes masks, so the precision is always set explicitly and read back from the compiled model.

use std::path::Path;

use openvino::{CompiledModel, Core, DeviceType, ElementType, InferRequest, PropertyKey, RwPropertyKey, Shape, Tensor};
use parking_lot::Mutex;

use super::providers::Precision;
use crate::error::{Error, Result};

/// One worker's request with its input tensor, made once and written in place for every slice.
struct Request {
    request: InferRequest,
    input: Tensor,
}

/// A compiled encoder with one infer request per worker. Fields drop in order: the requests before the
/// compiled model before the core. The two are only kept alive, never used again; the mutexes make them
/// shareable (the bindings make them `Send` only).
pub struct OvEncoder {
    requests: Vec<Mutex<Request>>,
    _compiled: Mutex<CompiledModel>,
    _core: Mutex<Core>,
    input_len: usize,
    /// The precision the compiled model really runs at ("f32", "bf16"), as OpenVINO reports it.
    pub precision: String,
}

fn ov(what: &str) -> impl Fn(openvino::InferenceError) -> String + '_ {
    move |e| format!("openvino: {what}: {e}")
}

impl OvEncoder {
    /// Compiles `onnx` (verified bytes) for the CPU with `streams` concurrent requests over `threads` threads.
    /// `Err` is the reason OpenVINO cannot run it, for the provider's fallback report.
    pub fn load(
        library: Option<&Path>,
        onnx: &[u8],
        input_shape: [usize; 4],
        streams: usize,
        threads: usize,
        precision: Precision,
    ) -> std::result::Result<OvEncoder, String> {
        crate::runtime::openvino(library)?;
        let mut core = Core::new().map_err(|e| format!("openvino: {e}"))?;
        let cpu = DeviceType::CPU;
        let hint = match precision {
            Precision::Exact => "f32",
            Precision::Fast => "bf16",
        };
        let props = [
            (RwPropertyKey::HintInferencePrecision, hint.to_owned()),
            (RwPropertyKey::NumStreams, streams.max(1).to_string()),
            (RwPropertyKey::InferenceNumThreads, threads.max(1).to_string()),
            // A library inside a host (Slicer) must not pin the host's threads to cores.
            (RwPropertyKey::Other("ENABLE_CPU_PINNING".into()), "NO".to_owned()),
        ];
        for (key, value) in &props {
            core.set_property(&cpu, key, value).map_err(ov("setting the CPU properties"))?;
        }
        let model = core.read_model_from_buffer(onnx, None).map_err(ov("reading the graph"))?;
        let mut compiled = core.compile_model(&model, cpu).map_err(ov("compiling the graph"))?;
        let precision = compiled
            .get_property(&PropertyKey::Other("INFERENCE_PRECISION_HINT".into()))
            .map_err(ov("reading the precision back"))?
            .into_owned();
        if precision.is_empty() || (precision != hint && hint == "f32") {
            return Err(format!("openvino: the CPU plugin compiled the encoder at {precision:?}, not {hint}"));
        }
        let dims: Vec<i64> = input_shape.iter().map(|&d| d as i64).collect();
        let shape = Shape::new(&dims).map_err(ov("the input shape"))?;
        let mut requests = Vec::with_capacity(streams.max(1));
        for _ in 0..streams.max(1) {
            let mut request = compiled.create_infer_request().map_err(ov("creating a request"))?;
            let input = Tensor::new(ElementType::F32, &shape).map_err(ov("the input tensor"))?;
            request.set_input_tensor(&input).map_err(ov("setting the input"))?;
            requests.push(Mutex::new(Request { request, input }));
        }
        Ok(OvEncoder {
            requests,
            _compiled: Mutex::new(compiled),
            _core: Mutex::new(core),
            input_len: input_shape.iter().product(),
            precision,
        })
    }

    pub fn workers(&self) -> usize {
        self.requests.len()
    }

    /// Encodes one preprocessed slice on worker `worker`'s request.
    pub fn encode(&self, worker: usize, image: &[f32], out: &mut [f32]) -> Result<()> {
        if image.len() != self.input_len {
            return Err(Error::ShapeMismatch(format!(
                "the encoder wants {} input values, got {}",
                self.input_len,
                image.len()
            )));
        }
        fn err(what: &'static str) -> impl Fn(openvino::InferenceError) -> Error {
            move |e| Error::Inference(format!("openvino: {what}: {e}"))
        }
        let mut r = self.requests[worker % self.requests.len()].lock();
        r.input.get_data_mut::<f32>().map_err(err("the input"))?.copy_from_slice(image);
        r.request.infer().map_err(err("inference"))?;
        let output = r.request.get_output_tensor_by_index(0).map_err(err("the output"))?;
        let emb = output.get_data::<f32>().map_err(err("the output"))?;
        if emb.len() != out.len() {
            return Err(Error::ModelContract(format!(
                "the encoder produced {} values on OpenVINO, expected {}",
                emb.len(),
                out.len()
            )));
        }
        out.copy_from_slice(emb);
        Ok(())
    }
}
