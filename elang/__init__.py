"""elang-serve: energy-based dynamic inference (E-LANG) on NVIDIA Triton Inference Server.

Subpackages: ``elang.core.routing`` (numpy-only routing maths), ``elang.contract`` (names and
dtypes), ``elang.repository.writer`` (model repository writer), ``elang.ops.server`` (local Triton
launcher), ``elang.client`` (client library, from client/), ``elang.export`` (ONNX
export, from export/), ``elang.triton`` (the Python-backend models).
"""

__version__ = "0.1.0"
