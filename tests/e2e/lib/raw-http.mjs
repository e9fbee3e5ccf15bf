// HTTP/1.1 over plain node:net sockets, for the tests that need requests
// fetch would not send (oversized headers and URLs, slow senders) or that
// need many connections open at once.

import net from 'node:net';

// Parses the first HTTP response in `bytes`. Returns null when the status
// line and headers are not complete; otherwise { status, headers, body }
// where header names are lower-case and body contains the bytes after the
// headers, decoded from chunked encoding when the response uses it.
export function parseResponse(bytes) {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) {
    return null;
  }
  const head = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const statusMatch = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
  if (!statusMatch) {
    return null;
  }
  const headers = {};
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) {
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
  }
  let body = bytes.subarray(end + 4);
  if ((headers['transfer-encoding'] ?? '').toLowerCase() === 'chunked') {
    body = decodeChunked(body);
  } else if (headers['content-length'] !== undefined) {
    body = body.subarray(0, Number(headers['content-length']));
  }
  return { status: Number(statusMatch[1]), headers, body };
}

function decodeChunked(bytes) {
  const parts = [];
  let offset = 0;
  while (offset < bytes.length) {
    const lineEnd = bytes.indexOf('\r\n', offset);
    if (lineEnd < 0) {
      break;
    }
    const size = parseInt(bytes.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) {
      break;
    }
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

// Opens a connection to 127.0.0.1:port, writes `payload` (a string or
// Buffer), and collects what the server sends until it closes the
// connection or `timeoutMs` passes. The request should carry
// `Connection: close`.
//
// Resolves to { response, bytes, closedByServer, error, elapsedMs }.
// `response` is parseResponse(bytes). A write error after the server has
// responded (the server may close before reading an oversized request to
// the end) is kept in `error` and does not reject.
export function exchange(port, payload, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks = [];
    let error = null;
    let settled = false;
    const socket = net.connect({ host: '127.0.0.1', port });

    const finish = (closedByServer) => {
      if (settled) {
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const bytes = Buffer.concat(chunks);
      resolve({
        response: parseResponse(bytes),
        bytes,
        closedByServer,
        error,
        elapsedMs: Date.now() - started,
      });
    };

    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (err) => {
      error = err;
    });
    socket.on('close', () => finish(true));
  });
}

// Builds the bytes of an HTTP/1.1 request with `Connection: close`.
export function buildRequest(method, target, { headers = {}, body } = {}) {
  const bodyBytes = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  for (const [name, value] of Object.entries(headers)) {
    lines.push(`${name}: ${value}`);
  }
  if (bodyBytes) {
    lines.push(`Content-Length: ${bodyBytes.length}`);
  }
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return bodyBytes ? Buffer.concat([head, bodyBytes]) : head;
}
