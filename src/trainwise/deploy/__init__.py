"""Shipping a trained run: export with parity checks, int8 quantization, serving and inference benchmarks
(see README.md in this folder)."""
