"""Classifiers: training, ONNX export with parity, quantization, pretrained weights, tiny models."""
