"""tfpretrain.export."""
