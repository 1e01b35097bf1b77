"""Encoder-decoders (T5): training from configs, export as generating stages, the G2P demo, tiny models."""
