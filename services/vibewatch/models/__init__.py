"""Model packages, their signing keys and the model registry."""
