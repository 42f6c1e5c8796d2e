"""Heads stage: train probes and the cough detector on student embeddings, add them to bundles.
"""
