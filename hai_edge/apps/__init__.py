"""Apps on top of the run side: ``kiosk`` (offline clinic web app, ``hai-edge kiosk``) and
``cough_pwa`` (the offline cough-screening web app, ``hai-edge pwa``).

Apps import only the run side (``hai_edge.runtime``, ``hai_edge.bundle``) plus their own extra;
nothing is imported here so ``import hai_edge.apps`` stays free.
"""

__all__: list[str] = []
