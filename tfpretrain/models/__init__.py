"""tfpretrain.models."""
