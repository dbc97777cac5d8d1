"""A small Open Inference Protocol (KServe v2 REST) client on httpx.

It works against ``nmn serve`` and any other server speaking the protocol
(Triton, KServe, MLServer), using JSON tensors.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from ._protocol import decode_output, encode_tensor

__all__ = ["Client", "ServeError"]


class ServeError(RuntimeError):
    """The server answered with an error; ``status`` and ``message`` say which."""

    def __init__(self, status: int, message: str, url: str = ""):
        super().__init__(f"HTTP {status} from {url}: {message}" if url else f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Client:
    """Talk to an Open Inference Protocol server.

    ``url`` is the server root (``http://host:port``). ``transport`` lets
    tests pass ``httpx.ASGITransport(app)`` / ``httpx.MockTransport``.

    Example::

        import numpy as np
        c = Client("http://127.0.0.1:8000")          # a running `nmn serve`
        c.ready()                                     # True
        c.infer("mlp", {"x": np.zeros((2, 4), np.float32)})["y"].shape   # (2, 3)
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        self.url = url.rstrip("/")
        if transport is None:
            # TCP_NODELAY: httpx writes the headers and the body separately, and
            # Nagle's algorithm then holds the body until the server's delayed ACK
            # (about 40 ms a request for bodies over a few kB).
            transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport, headers=dict(headers or {}))

    # -------------------------------------------------------------- plumbing

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error", resp.text)
            except Exception:
                message = resp.text
            raise ServeError(resp.status_code, str(message), str(resp.request.url))
        return json.loads(resp.content) if resp.content else None

    # ------------------------------------------------------------- endpoints

    def live(self) -> bool:
        """True if ``GET /v2/health/live`` answers 200."""
        try:
            return self._http.get("/v2/health/live").status_code == 200
        except httpx.HTTPError:
            return False

    def ready(self, model: str | None = None) -> bool:
        """True if the server (or ``model``) is ready to serve."""
        path = "/v2/health/ready" if model is None else f"/v2/models/{_q(model)}/ready"
        try:
            return self._http.get(path).status_code == 200
        except httpx.HTTPError:
            return False

    def metadata(self, model: str) -> dict[str, Any]:
        """Model metadata: ``name``, ``platform``, ``inputs``/``outputs`` with datatype and shape."""
        return self._check(self._http.get(f"/v2/models/{_q(model)}"))

    def models(self) -> list[str]:
        """Names of the served models (model repository extension)."""
        return [m["name"] for m in self._check(self._http.post("/v2/repository/index", json={}))]

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        outputs: Sequence[str] | None = None,
        id: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``model`` on ``{input name: array}``; return ``{output name: array}``.

        ``outputs`` restricts which outputs come back. Raises
        :class:`ServeError` if the server refuses the request.
        """
        body: dict[str, Any] = {"inputs": [encode_tensor(n, np.asarray(a)) for n, a in inputs.items()]}
        if outputs:
            body["outputs"] = [{"name": n} for n in outputs]
        if id is not None:
            body["id"] = id
        content = json.dumps(body, allow_nan=True, separators=(",", ":")).encode()
        resp = self._http.post(
            f"/v2/models/{_q(model)}/infer",
            content=content,
            headers={"content-type": "application/json"},
        )
        answer = self._check(resp)
        return dict(decode_output(o) for o in answer.get("outputs", []))


def _q(name: str) -> str:
    return quote(name, safe="")
