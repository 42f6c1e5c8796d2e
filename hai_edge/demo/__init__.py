"""The offline demo (``hai-edge demo``) and the recipe that builds the built-in demo bundles.
"""
