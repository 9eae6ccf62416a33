"""The error model and its drift counts: the bounds every numerical comparison is judged by.

``errormodel`` states each bound with its derivation (docs/error-model.md);
``drift`` counts the comparisons that differ in bits but stay inside a bound.
Imports only ``conformance.core``; no jax at import time.
"""
