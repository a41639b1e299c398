// A tiny static server for the player page: `/` is player.html, `/mpegts.js` is the pinned
// mpegts.js build from node_modules. Used by the e2e test, and by hand:
//   node scripts/browser/serve.mjs [PORT]   (listens on 127.0.0.1; PORT 0 or absent = any free port)
// then open http://127.0.0.1:PORT/?src=http://RELAY:8080/live/STREAM.flv
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const files = {
  '/': ['player.html', 'text/html; charset=utf-8'],
  '/player.html': ['player.html', 'text/html; charset=utf-8'],
  '/mpegts.js': ['node_modules/mpegts.js/dist/mpegts.js', 'text/javascript; charset=utf-8'],
};

/** Starts the server on 127.0.0.1:port and resolves to { server, url }. */
export async function startPlayerServer(port = 0) {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    const entry = files[path];
    if (req.method !== 'GET' || !entry) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    try {
      const body = await readFile(join(here, entry[0]));
      res.writeHead(200, { 'content-type': entry[1], 'cache-control': 'no-store' }).end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await startPlayerServer(Number(process.argv[2] ?? 0));
  console.log(`player page: ${url}?src=http://127.0.0.1:8080/live/STREAM.flv  (Ctrl-C to stop)`);
}
