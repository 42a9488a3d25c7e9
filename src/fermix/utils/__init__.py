"""Small helpers shared by the engine and the CLI (file I/O that must not leave torn files)."""
