"""Shared evaluation maths for the build side: embedding metrics (``metrics``) and grouped linear
probes (``probes``).
"""
