"""``make demo``: a live run of the example models against real servers, and its chart.

The models themselves (data, estimators, specs) are the template's: ``service/train.py``.
"""
