"""HTTP resources, one module each."""
