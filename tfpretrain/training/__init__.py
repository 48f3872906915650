"""tfpretrain.training."""
