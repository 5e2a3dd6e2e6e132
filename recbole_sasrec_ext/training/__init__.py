"""Training: the plugin's trainer (:mod:`.trainer`), its checkpoints (:mod:`.checkpoint`,
:mod:`.other_parameter`), the learning-rate schedule, the console and the trainer look-up."""
