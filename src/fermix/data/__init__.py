"""Data: label spaces, image reading, split assignment, fingerprints and dataset adapters.

Adapters turn a dataset's on-disk format into a records table plus per-sample dicts in the
project-wide key vocabulary; everything else here is shared by all adapters.
"""
