"""Dataset adapters: each reads one on-disk format and maps its labels into a canonical label space.

Adapters are listed in `fermix.registry.DATASETS` and imported only when asked for.
"""
