// A proxy in front of nudge that records every request as nudge got it (the browser does not
// report `sendBeacon` and unload-time keepalive requests to the page), and can lose the answer
// to the first request of a path: it forwards the request (nudge accepts it) and tells the
// browser 503, the worst case of a network hop. A correct client sends the same events again,
// and nudge must count them once. `answer` maps paths to a status the proxy gives itself
// (what another deployment would answer), without asking nudge.

import { createServer, request as httpRequest } from 'node:http';

export async function proxy(target, { loseFirst = null, answer = {} } = {}) {
  const base = new URL(target);
  const requests = [];
  let lost = false;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url, target);
      requests.push({
        method: req.method,
        path: url.pathname,
        query: url.search,
        headers: req.headers,
        body: body.toString('utf8'),
      });
      const own = answer[url.pathname];
      if (own && req.method !== 'OPTIONS') {
        res.writeHead(own, {
          'content-type': 'application/json',
          'access-control-allow-origin': req.headers.origin || '*',
        });
        res.end(`{"success":false,"error":"answered_by_the_proxy","status":${own}}`);
        return;
      }
      const forward = httpRequest(
        {
          host: base.hostname,
          port: base.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: base.host },
        },
        (upstream) => {
          const answer = [];
          upstream.on('data', (c) => answer.push(c));
          upstream.on('end', () => {
            if (!lost && req.method === 'POST' && url.pathname === loseFirst) {
              lost = true;
              res.writeHead(503, {
                'content-type': 'application/json',
                'access-control-allow-origin': req.headers.origin || '*',
              });
              res.end('{"success":false,"error":"lost_on_the_way"}');
              return;
            }
            res.writeHead(upstream.statusCode, upstream.headers);
            res.end(Buffer.concat(answer));
          });
        },
      );
      forward.on('error', (e) => {
        res.writeHead(502);
        res.end(String(e));
      });
      forward.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    requests,
    lostOne: () => lost,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}
