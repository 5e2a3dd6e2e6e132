"""The hash of a run's resolved settings, so that a benchmark row made before a default changed
(the full-ranking recipe, a model yaml) can be told from one the current code would make.

The suite's resume key hashes only the settings the suite gives (``RunSpec.config_hash``); this
hashes the final value of every key the plugin declares for the run's model (its ``CONFIG_KEYS``)
and for every run (``COMMON_KEYS``), output paths left out. The run reports it in its summary
(``settings_hash``), the suite runner computes it again for a finished row before skipping it.
"""

from __future__ import annotations

import hashlib
import json

from recbole_sasrec_ext.contract.keys import COMMON_KEYS
from recbole_sasrec_ext.contract.model import declarations

#: Declared keys that name files, not settings.
UNHASHED_KEYS = frozenset({"per_user_file"})

#: Keys declared after rows were hashed, with the value that behaves as the code before them: at
#: that value they are left out, so a row made before the key existed keeps its hash.
LATER_KEYS_NEUTRAL = {
    "weight_ema_epochs": 0.0, "lr_plateau_patience": 0, "lr_plateau_factor": 0.5,
    "output_embedding": "tied",
}


def settings_hash(config) -> str:
    """12 hex digits of the final values of the declared keys of ``config``'s model."""
    names = {key.name for key in COMMON_KEYS}
    names |= {key.name for key in declarations(config.model_class).config_keys}
    final = config.final_config_dict
    values = {
        name: final[name] for name in sorted(names - UNHASHED_KEYS)
        if name in final
        and not (name in LATER_KEYS_NEUTRAL and final[name] == LATER_KEYS_NEUTRAL[name])
    }
    text = json.dumps(values, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
