"""The entry points: ``run`` (:mod:`.quick_start`), the command line (:mod:`.cli`), ``recommend``,
``explain`` and ``tune``."""
