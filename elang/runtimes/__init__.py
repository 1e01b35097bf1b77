"""What a stage computes: ONNX Runtime classifiers, multi-exit segments and seq2seq generators, and the in-process first stage."""
