"""The HTTP API of the service (FastAPI): submit jobs, follow them, fetch images; plus a small web page."""
