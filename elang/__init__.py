"""elang-serve: energy-based dynamic inference (E-LANG) on NVIDIA Triton Inference Server.

Subpackages: ``elang.core.routing`` (numpy-only routing maths), ``elang.contract`` (names and
dtypes), ``elang.repository.writer`` (model repository writer), ``elang.ops.server`` (local Triton
launcher), ``elang.client`` (client library, from client/), ``elang.export`` (ONNX
export, from export/), ``elang.triton`` (the Python-backend models).
"""

import os as _os

__version__ = "0.1.0"

# elang forks tritonserver (a subprocess with a preexec_fn: PR_SET_PDEATHSIG) from processes
# that hold tritonclient gRPC channels: `elang serve`'s supervisor, tests. gRPC's fork handlers
# can deadlock such a fork (seen: a hung restart). No elang child uses the parent's gRPC state,
# so fork support is off unless the user set it. It must be set before grpc is first imported.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
