"""`cropper serve`: an OpenAI-compatible zoom proxy (Starlette + uvicorn). See `cropper.serve.app`."""

from .app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app", "serve"]


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          graceful_shutdown_s: float = 30.0) -> None:
    """Run the proxy until interrupted; on SIGINT/SIGTERM in-flight requests finish (up to the grace time)."""
    import uvicorn

    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=graceful_shutdown_s)
