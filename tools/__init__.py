"""Developer tools that sit beside the library (not installed with it); run from the repo root."""
