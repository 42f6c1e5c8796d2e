"""Shared evaluation maths for the build side: embedding metrics and grouped linear probes.
"""
