"""The jobs the ``tfpretrain`` command runs, one module per command, and the command line (`cli`).

Installed as ``tfpretrain.pipelines``. Each job orchestrates the library:
it reads files, builds models from `tfpretrain.models`, trains with
`tfpretrain.training`, writes model directories (`tfpretrain.models.model_dir`)
and exports with `tfpretrain.export`. The library never imports these modules.
"""
