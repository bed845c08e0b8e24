"""`odapi tensorboard`: TensorBoard on a model dir (train/ and eval/ event files)."""

from __future__ import annotations

from pathlib import Path

from odapi.errors import OdapiError


def serve(model_dir: Path, host: str = "127.0.0.1", port: int = 6006) -> int:
    """Serve until interrupted; TensorBoard prints its URL."""
    from tensorboard import program

    if not Path(model_dir).exists():
        raise OdapiError("no such model dir (TensorBoard would show nothing)",
                         where=str(model_dir))
    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(model_dir), "--host", host,
                          "--port", str(port), "--reload_interval", "15"])
    return board.main()
