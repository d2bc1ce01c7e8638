"""Where the server keeps its files, never shown: Gradio names every file it hands out (an upload's reply, an answer's
export button, a file URL) by its absolute path in its cache folder, which told anyone the server's directory layout
(the data directory, the user's home). The guard sends those paths relative to a public name, PUBLIC, and turns them
back on the way in: in file URLs and in the file objects of Gradio's event requests. A public path that is not turned
back resolves against the server's working directory, where Gradio finds no uploaded file: it fails closed.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

PUBLIC = "paperchat-files"
FILE_ROUTES = ("/gradio_api/file=", "/file=")


class CachePaths:
    """The mapping between Gradio's cache folder and PUBLIC."""

    def __init__(self, folder: str) -> None:
        self.folder = folder.rstrip("/")
        # The folder as it appears in replies: as is, URL-quoted (file URLs) and JSON-escaped.
        forms = {self.folder, quote(self.folder, safe="/"), json.dumps(self.folder)[1:-1]}
        self._forms = sorted((f.encode() for f in forms), key=len, reverse=True)

    def hide(self, data: bytes) -> bytes:
        """A reply with the cache folder named PUBLIC."""
        for form in self._forms:
            data = data.replace(form, PUBLIC.encode())
        return data

    def hidden(self, path: str) -> str:
        """One cache path as the client sees it."""
        return PUBLIC + path[len(self.folder):] if path.startswith(self.folder + "/") else path

    def shown(self, path: str) -> str:
        """A client's path back in the cache folder (others unchanged)."""
        return self.folder + path[len(PUBLIC):] if path.startswith(PUBLIC + "/") else path

    def file_route(self, path: str) -> str | None:
        """A /gradio_api/file=PUBLIC/… request path in the cache folder (None: not one of those)."""
        for route in FILE_ROUTES:
            if path.startswith(route + PUBLIC + "/"):
                return route + self.shown(path[len(route):])
        return None

    def request_body(self, body: bytes) -> bytes:
        """An event request's JSON with its file objects' paths and URLs back in the cache folder (a body that is
        not JSON, or too deeply nested to read, is left to Gradio as it is)."""
        if PUBLIC.encode() not in body:
            return body
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return body
        try:
            return json.dumps(self._files_back(data)).encode()
        except RecursionError:
            return body

    def _files_back(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._files_back(v) for v in value]
        if not isinstance(value, dict):
            return value
        value = {k: self._files_back(v) for k, v in value.items()}
        if isinstance(value.get("path"), str) and ("meta" in value or "orig_name" in value):  # a Gradio FileData
            value["path"] = self.shown(value["path"])
            if isinstance(value.get("url"), str):
                for route in FILE_ROUTES:
                    head, found, rest = value["url"].partition(route + PUBLIC + "/")
                    if found:
                        value["url"] = head + route + quote(self.folder, safe="/") + "/" + rest
        return value


def hiding(send: Any, files: CachePaths) -> Any:
    """An ASGI `send` that names the cache folder PUBLIC in JSON, HTML and event-stream replies (a reply with a
    Content-Length is held until complete, its length then set anew; a stream is rewritten event by event)."""
    state: dict[str, Any] = {"pass": False, "start": None, "body": []}

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            state["pass"] = not kind.startswith((b"application/json", b"text/event-stream", b"text/html"))
            if not state["pass"] and any(k.lower() == b"content-length" for k, _ in headers):
                state["start"] = message  # held: the length changes
                return
        elif message["type"] == "http.response.body" and not state["pass"]:
            if state["start"] is None:
                message = {**message, "body": files.hide(message.get("body", b""))}
            else:
                state["body"].append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body, start = files.hide(b"".join(state["body"])), state["start"]
                state["start"] = None
                await send({**start, "headers": [(k, v) for k, v in start.get("headers", [])
                                                 if k.lower() != b"content-length"]
                            + [(b"content-length", str(len(body)).encode())]})
                message = {**message, "body": body}
        await send(message)

    return wrapped
