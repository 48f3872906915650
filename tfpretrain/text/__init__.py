"""tfpretrain.text."""
