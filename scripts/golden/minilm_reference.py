#!/usr/bin/env python3
"""Writes tests/fixtures/golden/minilm.json: token ids and embeddings of ~30 phrases through models/minilm, the
reference the Rust text encoder must match (tests/models.rs). Run by hand, never in CI:

    python3 -m venv /tmp/onnxvenv && /tmp/onnxvenv/bin/pip install onnxruntime tokenizers numpy
    /tmp/onnxvenv/bin/python scripts/golden/minilm_reference.py

The recipe is sentence-transformers' for all-MiniLM-L6-v2: the package's tokenizer.json with its fixed
128-token padding turned off and truncation at [text] max_tokens (256, the model's max_seq_length), the graph
run on one phrase at a time (batch 1, so no padding reaches it), token states averaged over the attention mask,
then L2-normalised. Embeddings are kept to 7 significant digits; the Rust test allows 1e-4.
"""
import hashlib
import json
import platform
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tokenizers

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "models/minilm"
OUT = ROOT / "tests/fixtures/golden/minilm.json"

# Anatomy, laterality, abbreviations, misspellings, unicode, punctuation and one text longer than max_tokens.
LONG = " ".join(
    ["the hepatocellular carcinoma infiltrates the periportal parenchyma near the cholecystectomy clips;"] * 20
)
PHRASES = [
    "liver",
    "left kidney",
    "right kidney",
    "kidney left",
    "spleen",
    "pancreas",
    "gallbladder",
    "urinary bladder",
    "aorta",
    "inferior vena cava",
    "left adrenal gland",
    "right lung upper lobe",
    "vertebra L3",
    "HCC",
    "hepatocellular carcinoma",
    "tumör",
    "Tumor in the LEFT kidney!",
    "lesion, segment VIII (liver)",
    "a 3.2 cm hypodense mass?",
    "portal vein thrombosis",
    "brain",
    "prostate",
    "duodenum",
    "stomach",
    "esophagus",
    "Leber",
    "rein gauche",
    "肝臓",
    "  kidney  ",
    "kidney-stone",
    LONG,
]


def main() -> None:
    manifest = tomllib.loads((PKG / "manifest.toml").read_text())
    text = manifest["text"]
    graph = manifest["graphs"]["encoder"]
    for file, sha in [(text["tokenizer"], text["tokenizer_sha256"]), (graph["file"], graph["sha256"])]:
        got = hashlib.sha256((PKG / file).read_bytes()).hexdigest()
        assert got == sha, f"{file}: sha256 {got}, manifest {sha}"
    tok = tokenizers.Tokenizer.from_file(str(PKG / text["tokenizer"]))
    tok.no_padding()
    tok.enable_truncation(text["max_tokens"])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(PKG / graph["file"]), so, providers=["CPUExecutionProvider"])
    rows = []
    for p in PHRASES:
        enc = tok.encode(p)
        ids = np.array([enc.ids], dtype=np.int64)
        mask = np.array([enc.attention_mask], dtype=np.int64)
        (hidden,) = sess.run(["last_hidden_state"], {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(ids),
        })
        m = mask[..., None].astype(np.float64)
        pooled = (hidden.astype(np.float64) * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        v = pooled[0] / max(np.linalg.norm(pooled[0]), 1e-12)
        rows.append({"text": p, "ids": enc.ids, "embedding": [float(f"{x:.7g}") for x in v]})
    assert len(rows[-1]["ids"]) == text["max_tokens"], "the long text must be truncated"
    doc = {
        "about": "scripts/golden/minilm_reference.py: models/minilm through onnxruntime + tokenizers (Python), "
        "padding off, truncation at [text] max_tokens, masked mean pooling + L2",
        "onnxruntime": ort.__version__,
        "tokenizers": tokenizers.__version__,
        "python": platform.python_version(),
        "max_tokens": text["max_tokens"],
        "dim": text["dim"],
        "phrases": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    e = {r["text"]: np.array(r["embedding"]) for r in rows}
    for a, b in [("left kidney", "right kidney"), ("left kidney", "kidney left"), ("left kidney", "liver")]:
        print(f"cos({a!r}, {b!r}) = {e[a] @ e[b]:.4f}")
    print(f"wrote {OUT} ({len(rows)} phrases; the long one {len(tok.encode(LONG, add_special_tokens=True).ids)} "
          f"tokens after truncation)")


if __name__ == "__main__":
    main()
