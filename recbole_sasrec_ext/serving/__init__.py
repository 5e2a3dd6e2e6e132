"""Serving a trained model without RecBole: load a bundle written by ``export``, recommend.

::

    from recbole_sasrec_ext import serving

    model = serving.load("bundle/")             # onnxruntime; backend="torch" for the fallback
    model.recommend([["1193", "661"], []], k=10)
    model.similar_items("1193", k=5)

Nothing imported from here imports RecBole (a test checks it).
"""

from recbole_sasrec_ext.serving.recommender import (
    BundleRecommender,
    Recommendation,
    load,
)

__all__ = ["BundleRecommender", "Recommendation", "load"]
