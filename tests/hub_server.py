"""A minimal Hugging Face Hub-compatible HTTP server for tests, on 127.0.0.1.

It implements what the real `huggingface_hub` client needs to push and pull model repos:
create-repo, preupload (every file 'regular', sent inline in the commit), commit (NDJSON)
and resolve (HEAD and GET). Files live in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml


class HubState:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: dict[str, list[dict]] = {}
        self.requests: list[str] = []


def make_handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict | None = None, content_type: str = "application/json"):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, code: int, payload) -> None:
            self._send(code, json.dumps(payload).encode())

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def do_POST(self):
            path = urlparse(self.path).path
            state.requests.append(f"POST {path}")
            body = self._body()
            if path == "/api/repos/create":
                data = json.loads(body)
                repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
                if repo_id in state.repos:
                    return self._json(409, {"error": "You already created this model repo", "url": f"http://host/{repo_id}"})
                state.repos[repo_id] = {}
                state.commits[repo_id] = []
                return self._json(200, {"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
            if path == "/api/validate-yaml":
                # The client sends README.md front matter here before committing it.
                try:
                    yaml.safe_load(json.loads(body)["content"].split("---")[1])
                except Exception as error:  # noqa: BLE001 - any parse failure is the client's error
                    return self._json(400, {"error": f"invalid YAML: {error}"})
                return self._json(200, {"errors": [], "warnings": []})
            match = re.fullmatch(r"/api/models/(.+)/preupload/([^/]+)", path)
            if match:
                files = json.loads(body)["files"]
                return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
            match = re.fullmatch(r"/api/models/(.+)/commit/([^/]+)", path)
            if match:
                repo_id = match.group(1)
                if repo_id not in state.repos:
                    return self._json(404, {"error": "Repository not found"})
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                added = {}
                for line in lines:
                    if line["key"] == "file":
                        added[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
                    elif line["key"] in ("lfsFile", "deletedFile", "deletedFolder", "copyFile"):
                        return self._json(400, {"error": f"unsupported operation {line['key']} in this test server"})
                state.repos[repo_id].update(added)
                oid = hashlib.sha1(json.dumps(sorted(added)).encode() + str(len(state.commits[repo_id])).encode()).hexdigest()
                state.commits[repo_id].append({"oid": oid, "files": sorted(added)})
                return self._json(200, {"commitUrl": f"http://{self.headers['Host']}/{repo_id}/commit/{oid}", "commitOid": oid,
                                        "pullRequestUrl": None})
            return self._json(404, {"error": f"no route {path}"})

        def _resolve(self):
            path = unquote(urlparse(self.path).path)
            state.requests.append(f"{self.command} {path}")
            match = re.fullmatch(r"/(?:models/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if not match:
                return self._json(404, {"error": f"no route {path}"})
            repo_id, _, filename = match.groups()
            files = state.repos.get(repo_id)
            if files is None:
                return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"})
            if filename not in files:
                return self._send(404, b"{}", {"X-Error-Code": "EntryNotFound"})
            content = files[filename]
            commit = state.commits[repo_id][-1]["oid"]
            etag = hashlib.sha256(content).hexdigest()
            self._send(200, content, {"X-Repo-Commit": commit, "ETag": f'"{etag}"'}, content_type="application/octet-stream")

        do_GET = _resolve
        do_HEAD = _resolve

    return Handler


class HubServer:
    """``with HubServer() as hub: hub.url``: serves until the block ends."""

    def __init__(self) -> None:
        self.state = HubState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
