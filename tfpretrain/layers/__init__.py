"""tfpretrain.layers."""
