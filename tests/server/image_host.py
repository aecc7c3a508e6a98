#!/usr/bin/env python3
"""image_host.py - a tiny local HTTP server for the remote-image tests (127.0.0.1 only).

  /img.png        the file given on the command line
  /redirect-in    302 to /img.png on the same host (allowed)
  /redirect-out   302 to http://localhost:PORT/img.png (a host the allow-list lacks)
  /slow           waits 3 s before answering
  /big            2 MiB of bytes
  /missing        404
Prints "port N" on stdout once listening."""
import http.server, sys, time, threading

IMG = open(sys.argv[1], "rb").read()

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        port = self.server.server_address[1]
        if self.path == "/img.png":
            self.send(200, IMG, [("Content-Type", "image/png")])
        elif self.path == "/redirect-in":
            self.send(302, b"", [("Location", "/img.png")])
        elif self.path == "/redirect-out":
            self.send(302, b"", [("Location", "http://localhost:%d/img.png" % port)])
        elif self.path == "/slow":
            time.sleep(3)
            self.send(200, IMG)
        elif self.path == "/big":
            self.send(200, b"\x89PNG" + b"\0" * (2 << 20))
        else:
            self.send(404, b"not found")

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print("port", srv.server_address[1], flush=True)
srv.serve_forever()
