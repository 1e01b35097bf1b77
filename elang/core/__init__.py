"""Serving core, numpy only: routing policies and the deferral rule, the execution model, router settings, text checks, atomic writes."""
