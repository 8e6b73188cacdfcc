"""The web layer: FastAPI routes for the REST API v1 and the sandbox's simulated phones."""
