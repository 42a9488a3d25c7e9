"""Method plugins. The contract is in base.py; the registry of names is fermix.registry.METHODS."""
