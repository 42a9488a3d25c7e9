"""Networks shared by methods: backbones (feature extractors) and heads."""
