"""A real HTTP server on 127.0.0.1 for download tests: range requests, a request log, faults."""

import http.server
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server API)
        srv = self.server
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        srv.log.append((name, rng))
        if name not in srv.files:
            self.send_error(404, "Not Found")
            return
        body = srv.files[name]
        start = 0
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if name not in srv.no_length:
            self.send_header("Content-Length", str(len(body) - start))
        else:
            self.close_connection = True  # the end of the body is the end of the connection
        self.end_headers()
        drop = srv.drop_after.pop(name, None)
        if drop is not None:
            # Send part of the body, then cut the connection: a dropped transfer.
            self.wfile.write(body[start : start + drop])
            self.wfile.flush()
            self.close_connection = True
            return
        sent = 0
        try:
            for at in range(start, len(body), 1 << 16):  # pieces: count what the client took
                self.wfile.write(body[at : at + (1 << 16)])
                sent += len(body[at : at + (1 << 16)])
        except OSError:  # the client hung up
            self.close_connection = True
        finally:
            srv.sent[name] = sent


def serve():
    """Starts a server; ``srv.files[name]`` is served at ``srv.base/name``.

    ``srv.log`` lists ``(name, Range header)`` per request, ``srv.drop_after[name] = n`` cuts the
    next transfer of ``name`` after n bytes, ``srv.ranges = False`` ignores range requests,
    names in ``srv.no_length`` are sent without a Content-Length, and ``srv.sent[name]`` is the
    number of body bytes the last transfer of ``name`` got out before the client hung up.
    Call ``stop(srv)`` when done.
    """
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.log, srv.drop_after, srv.ranges = {}, [], {}, True
    srv.no_length, srv.sent = set(), {}
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    return srv


def stop(srv):
    srv.shutdown()
    srv.server_close()
