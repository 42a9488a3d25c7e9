"""Face preprocessing: detect, 68 landmarks, eye-based similarity alignment, crop, manifest."""
