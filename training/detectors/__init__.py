"""Detectors by kind: ``ae``, ``vae`` and ``pyod:<Name>``.

``make_detector(spec, **params)`` builds an unfitted detector from its CLI name;
``detector_class(kind)`` finds the class that loads a saved one.
"""
