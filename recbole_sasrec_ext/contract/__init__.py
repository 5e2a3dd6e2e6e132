"""What the floors promise each other, without torch or RecBole: the model contract
(:class:`PluginModel`), the config keys a model declares (:mod:`.keys`), the run's decisions
(:class:`RunPlan`) and the run's result (:class:`RunSummary`)."""

from recbole_sasrec_ext.contract.model import AttentionLayer, PluginModel
from recbole_sasrec_ext.contract.plan import RunPlan
from recbole_sasrec_ext.contract.summary import RunSummary

__all__ = ["AttentionLayer", "PluginModel", "RunPlan", "RunSummary"]
