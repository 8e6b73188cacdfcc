"""REST API v1: one module per resource, all under ``/api/v1`` and all authenticated."""
