// t/fake/rest.js: what the fake REST providers (twilio.js, vonage.js,
// sendgrid.js) share: options, an HTTPS (or, without --cert, plain HTTP)
// HTTP/1.1 server on 127.0.0.1 with keep-alive, the request body, a JSON
// lines log and "once per recipient" bookkeeping. Node built-ins only.
//
// Common options: --cert F --key F (TLS; else plain HTTP) --log F
// --port-file F --port N --latency-ms N.
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');

function parseArgs(extra) {
  const opt = { port: 0, latencyMs: 0, ...extra.defaults };
  for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    const v = () => process.argv[++i];
    switch (a) {
      case '--cert': opt.cert = v(); break;
      case '--key': opt.key = v(); break;
      case '--log': opt.log = v(); break;
      case '--port-file': opt.portFile = v(); break;
      case '--port': opt.port = +v(); break;
      case '--latency-ms': opt.latencyMs = +v(); break;
      default:
        if (extra.options && a.slice(2) in extra.options) {
          opt[extra.options[a.slice(2)]] = v();
          break;
        }
        console.error('unknown option ' + a);
        process.exit(2);
    }
  }
  return opt;
}

// Starts the server; handler(req, body, conn, reply, rec) where
// reply(status, headers, body) answers and rec is the log line in the
// making (the handler adds to it; it is written when reply is called).
function serve(opt, handler) {
  let nconn = 0;
  const record = (obj) => {
    if (opt.log) fs.appendFileSync(opt.log, JSON.stringify(obj) + '\n');
  };
  const onRequest = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const rec = {
        at: Date.now(), conn: req.socket._fakeId, method: req.method,
        path: req.url, headers: req.headers, body,
      };
      let answered = false;
      const reply = (status, headers, out) => {
        if (answered) return;
        answered = true;
        rec.status = status;
        record(rec);
        const send = () => {
          const data = out === undefined || out === null ? ''
            : typeof out === 'string' ? out : JSON.stringify(out);
          res.writeHead(status, {
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(data),
            ...headers,
          });
          res.end(data);
        };
        if (opt.latencyMs) setTimeout(send, opt.latencyMs); else send();
      };
      handler(req, body, rec, reply);
    });
  };
  const server = opt.cert
    ? https.createServer({ cert: fs.readFileSync(opt.cert),
                           key: fs.readFileSync(opt.key) }, onRequest)
    : http.createServer(onRequest);
  server.keepAliveTimeout = 60000;
  server.on(opt.cert ? 'secureConnection' : 'connection', (sock) => {
    sock._fakeId = ++nconn;
    record({ event: 'connect', conn: sock._fakeId, at: Date.now() });
  });
  server.listen(opt.port, '127.0.0.1', () => {
    const port = server.address().port;
    if (opt.portFile) {
      fs.writeFileSync(opt.portFile + '.tmp', String(port));
      fs.renameSync(opt.portFile + '.tmp', opt.portFile);
    }
    process.stdout.write('port=' + port + '\n');
  });
  const quit = () => process.exit(0);
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
  return server;
}

// True the first time key is seen (per process).
const seen = new Set();
function once(key) {
  if (seen.has(key)) return false;
  seen.add(key);
  return true;
}

function form(body) {
  const p = new URLSearchParams(body);
  const o = {};
  for (const [k, v] of p) o[k] = k in o ? [].concat(o[k], v) : v;
  return o;
}

module.exports = { parseArgs, serve, once, form };
