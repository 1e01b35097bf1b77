"""Triton Python-backend models of elang-serve.

Each model.py in a model repository is one import line that names a class here.
These modules import ``triton_python_backend_utils``, which exists only inside the
Triton Python backend (tests put a small fake in ``sys.modules``).
"""
