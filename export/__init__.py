"""elang.export: turn Hugging Face checkpoints into ONNX model folders (needs the `export` extra)."""
