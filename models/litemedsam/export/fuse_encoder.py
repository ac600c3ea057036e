#!/usr/bin/env python3
"""fuse_encoder.py: derive ../encoder-fused.onnx from the exported ../encoder.onnx by graph surgery.

Needs only `onnx` and `numpy` (no torch); `--verify` also needs `onnxruntime`.  The rewrite moves data
differently and computes exactly the same sums, so on ONNX Runtime's CPU provider the fused graph gives
**bit-identical** embeddings (checked by --verify here and by tests/parity.rs on every CI run).

Two rewrites, both in TinyViT's window-attention blocks (layers 1-3, 10 blocks):

1. Attention core -> com.microsoft.MultiHeadAttention.
   The export computes qkv = x W + b laid out per head as [q_h | k_h | v_h], then Reshape, Split, three
   head Transposes, MatMul, Mul(scale), Add(relative position bias), Softmax, MatMul, Transpose, Reshape.
   The fused graph permutes W's columns and b into three projections q, k, v ([heads * d] each), and one
   MultiHeadAttention node (num_heads, scale, attention_bias [1, heads, 49, 49]) writes the (windows, 49,
   heads * d) tensor the output projection reads.  Permuting a GEMM's output columns or splitting it by
   columns does not change any output element's sum.
2. Local depthwise conv layout.
   (B, L, C) -Transpose-> (B, C, L) -Reshape-> NCHW conv -Reshape-> (B, C, L) -Transpose-> (B, L, C)
   becomes (B, L, C) -Reshape-> NHWC -Transpose-> NCHW conv -Transpose-> NHWC -Reshape-> (B, L, C), the
   same data movement in the form ONNX Runtime's NCHWc transformer folds into its ReorderInput /
   ReorderOutput nodes (channels_last), which removes 20 Transpose kernels.

Usage (from the repository root):
  python models/litemedsam/export/fuse_encoder.py                 # writes models/litemedsam/encoder-fused.onnx
  python models/litemedsam/export/fuse_encoder.py --verify        # and checks it against encoder.onnx
The output is deterministic: the same input gives the same bytes (sha256 in ../manifest.toml).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent


class Graph:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.g = model.graph
        self.consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t)
                       for n in self.g.node if n.op_type == "Constant"}
        self.inits = {i.name: i for i in self.g.initializer}
        self.by_name = {n.name: n for n in self.g.node}
        self.added: list[onnx.NodeProto] = []

    def value(self, name: str) -> np.ndarray:
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        return self.consts[name]

    def node(self, name: str) -> onnx.NodeProto:
        try:
            return self.by_name[name]
        except KeyError:
            sys.exit(f"fuse_encoder: expected node {name!r} is not in the graph (not the LiteMedSAM export?)")

    def initializer(self, name: str, array: np.ndarray) -> str:
        self.g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def add(self, op: str, inputs: list[str], outputs: list[str], name: str, domain: str = "", **attrs):
        self.added.append(helper.make_node(op, inputs, outputs, name=name, domain=domain or None, **attrs))


def fuse_attention(gr: Graph, p: str) -> None:
    """p is a block's attention prefix, e.g. '/image_encoder/layers.1/blocks.0/attn/'."""
    mm, add, reshape = gr.node(p + "qkv/MatMul"), gr.node(p + "qkv/Add"), gr.node(p + "Reshape")
    split, out = gr.node(p + "Split"), gr.node(p + "Reshape_1")
    _, _, heads, _ = (int(v) for v in gr.value(reshape.input[1]))
    kd, kd2, d = (int(v) for v in gr.value(split.input[1]))
    if not kd == kd2 == d:
        sys.exit(f"fuse_encoder: {p}: q/k/v widths {kd}/{kd2}/{d} differ; MultiHeadAttention needs them equal")
    scale = float(gr.value(gr.node(p + "Mul").input[1]))
    bias = gr.value(gr.node(p + "Add").input[1]).astype(np.float32)          # [heads, S, S]
    w = gr.value(mm.input[1])                                                # [C, heads * 3d]
    b = gr.value(add.input[0])                                               # [heads * 3d]
    width = heads * d
    qkv = []
    for part, tag in enumerate("qkv"):
        cols = np.array([h * 3 * d + part * d + j for h in range(heads) for j in range(d)])
        wn = gr.initializer(p + f"fused/{tag}.weight", w[:, cols])
        bn = gr.initializer(p + f"fused/{tag}.bias", b[cols])
        y = p + f"fused/{tag}"
        gr.add("MatMul", [mm.input[0], wn], [y + "_mm"], p + f"fused/{tag}/MatMul")
        gr.add("Add", [bn, y + "_mm"], [y], p + f"fused/{tag}/Add")  # bias first, as the export has it
        qkv.append(y)
    assert len(qkv) * width == w.shape[1]
    ab = gr.initializer(p + "fused/attention_bias", bias[None])
    gr.g.node.remove(out)  # the MultiHeadAttention node produces its output name; the dead chain goes later
    gr.add("MultiHeadAttention", qkv + ["", "", ab], [out.output[0]], p + "fused/MultiHeadAttention",
           domain="com.microsoft", num_heads=heads, scale=scale)


def channels_last_local_conv(gr: Graph, p: str) -> None:
    """p is a block prefix, e.g. '/image_encoder/layers.1/blocks.0/'."""
    t_in, r_in, conv, r_out, t_out = (gr.node(p + k) for k in
                                      ("Transpose_3", "Reshape_8", "local_conv/c/Conv", "Reshape_9", "Transpose_4"))
    if list(t_in.attribute[0].ints) != [0, 2, 1] or list(t_out.attribute[0].ints) != [0, 2, 1]:
        sys.exit(f"fuse_encoder: {p}: unexpected Transpose perms around local_conv")
    n, c, h, w = (int(v) for v in gr.value(r_in.input[1]))
    nhwc = gr.initializer(p + "nhwc/shape", np.array([n, h, w, c], np.int64))
    nlc = gr.initializer(p + "nlc/shape", np.array([n, h * w, c], np.int64))
    for node in (t_in, r_in, r_out, t_out):
        gr.g.node.remove(node)
    gr.add("Reshape", [t_in.input[0], nhwc], [p + "nhwc/x"], p + "nhwc/Reshape")
    gr.add("Transpose", [p + "nhwc/x"], [r_in.output[0]], p + "nhwc/Transpose", perm=[0, 3, 1, 2])
    gr.add("Transpose", [conv.output[0]], [p + "nhwc/y"], p + "nlc/Transpose", perm=[0, 2, 3, 1])
    gr.add("Reshape", [p + "nhwc/y", nlc], [t_out.output[0]], p + "nlc/Reshape")


def finish(gr: Graph) -> None:
    """Appends the new nodes, drops what no output needs, sorts topologically, drops unused initializers."""
    g = gr.g
    nodes = list(g.node) + gr.added
    needed = {o.name for o in g.output}
    alive: set[int] = set()
    grew = True
    while grew:
        grew = False
        for i, n in enumerate(nodes):
            if i not in alive and any(o in needed for o in n.output):
                alive.add(i)
                needed.update(x for x in n.input if x)
                grew = True
    pending = [n for i, n in enumerate(nodes) if i in alive]
    ready = {x.name for x in g.input} | {x.name for x in g.initializer} | {""}
    ordered = []
    while pending:
        rest = [n for n in pending if not all(x in ready for x in n.input)]
        for n in pending:
            if all(x in ready for x in n.input):
                ordered.append(n)
                ready.update(n.output)
        if len(rest) == len(pending):
            sys.exit("fuse_encoder: the rewritten graph has a cycle or a dangling input")
        pending = [n for n in rest if n not in ordered]
    del g.node[:]
    g.node.extend(ordered)
    used = {x for n in g.node for x in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    if not any(o.domain == "com.microsoft" for o in gr.model.opset_import):
        gr.model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    gr.model.doc_string = ("LiteMedSAM encoder, derived from encoder.onnx by export/fuse_encoder.py "
                           "(MultiHeadAttention, channels-last local conv); same arithmetic")


def fuse(src: Path) -> onnx.ModelProto:
    model = onnx.load(str(src))
    gr = Graph(model)
    attn = sorted({n.name[: n.name.index("/attn/") + 6] for n in model.graph.node if "/attn/" in n.name})
    blocks = sorted({n.name[: n.name.index("/local_conv/") + 1] for n in model.graph.node
                     if "/local_conv/" in n.name})
    if len(attn) != 10 or len(blocks) != 10:
        sys.exit(f"fuse_encoder: expected 10 attention blocks, found {len(attn)} / {len(blocks)}")
    for p in attn:
        fuse_attention(gr, p)
    for p in blocks:
        channels_last_local_conv(gr, p)
    finish(gr)
    onnx.checker.check_model(model)
    return model


def verify(src: Path, dst: Path) -> None:
    import onnxruntime as ort

    def session(path: Path) -> "ort.InferenceSession":
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    a, b = session(src), session(dst)
    rng = np.random.default_rng(7)
    cases = {"random": rng.random((1, 3, 256, 256), dtype=np.float32)}
    ramp = np.zeros((1, 3, 256, 256), np.float32)
    ramp[..., :200, :180] = np.linspace(0, 1, 200 * 180, dtype=np.float32).reshape(200, 180)
    cases["padded ramp"] = ramp
    for name, x in cases.items():
        ya, yb = a.run(None, {"image": x})[0], b.run(None, {"image": x})[0]
        d = float(np.abs(ya - yb).max())
        print(f"verify {name}: max |d| {d:.3g}, bit-identical {bool((ya == yb).all())}")
        if not (ya == yb).all():
            sys.exit("fuse_encoder: the fused graph is not bit-identical to the export on ORT CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=PACKAGE / "encoder.onnx")
    ap.add_argument("--out", type=Path, default=PACKAGE / "encoder-fused.onnx")
    ap.add_argument("--verify", action="store_true", help="compare with --src on ONNX Runtime CPU")
    args = ap.parse_args()
    model = fuse(args.src)
    onnx.save(model, str(args.out))
    data = args.out.read_bytes()
    print(f"{args.out}: {len(data)} bytes, {len(model.graph.node)} nodes, sha256 {hashlib.sha256(data).hexdigest()}")
    if args.verify:
        verify(args.src, args.out)


if __name__ == "__main__":
    main()
