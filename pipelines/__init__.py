"""End-to-end jobs run by the tfpretrain CLI (installed as tfpretrain.pipelines)."""
