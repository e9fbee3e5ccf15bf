#!/usr/bin/env python3
"""Fake OpenAI-compatible upstream for bench/run.sh.

Serves POST /v1/chat/completions on 127.0.0.1 with one fixed chat completion
and counts the calls, so the benchmark can check that the proxies in front of
it served their load from cache. GET /bench/calls returns that count as JSON.

Usage: upstream.py PORT_FILE
It listens on a port chosen by the kernel and writes the port number to
PORT_FILE once it accepts connections. It stops on SIGTERM or SIGINT.
"""

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! This fixed reply comes from the benchmark's fake upstream.",
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 11, "total_tokens": 23},
    }
).encode()

calls_lock = threading.Lock()
calls = {"chat_completions": 0, "other": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def send_json(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/v1/chat/completions":
            with calls_lock:
                calls["chat_completions"] += 1
            self.send_json(200, COMPLETION)
            return
        with calls_lock:
            calls["other"] += 1
        error = {"error": {"message": f"no route for POST {self.path}", "type": "invalid_request_error",
                           "param": None, "code": "not_found"}}
        self.send_json(404, json.dumps(error).encode())

    def do_GET(self):
        if self.path == "/bench/calls":
            with calls_lock:
                body = json.dumps(calls).encode()
            self.send_json(200, body)
            return
        with calls_lock:
            calls["other"] += 1
        if self.path == "/v1/models":
            body = {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": "bench"}]}
            self.send_json(200, json.dumps(body).encode())
            return
        error = {"error": {"message": f"no route for GET {self.path}", "type": "invalid_request_error",
                           "param": None, "code": "not_found"}}
        self.send_json(404, json.dumps(error).encode())


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: upstream.py PORT_FILE")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return, so it must run on another thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open(sys.argv[1], "w") as port_file:
        port_file.write(f"{server.server_address[1]}\n")
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
