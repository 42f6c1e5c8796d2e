"""Distillation stage: teacher-embedding store, students, augmentation, training, run directories.

Build side (needs the ``export`` extra for training); the package file imports nothing heavy.
"""
