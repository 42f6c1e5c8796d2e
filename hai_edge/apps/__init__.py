"""Apps built on the run side: ``cough_pwa`` (the offline cough-screening web app).

Nothing is imported here: each app loads its own modules when its command runs.
"""

__all__: list[str] = []
