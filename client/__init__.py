"""elang.client: submit texts to an elang-serve Triton server and collect routing statistics.

Needs only the bare install (numpy, tritonclient): ``pip install elang-serve``.
"""

from elang.client.client import ClientError, ElangClient
from elang.client.stats import RoutingStats

__all__ = ["ClientError", "ElangClient", "RoutingStats"]
