#!/usr/bin/env node
// t/fake/webpush-testing.js: runs the third-party push-service mock
// `web-push-testing` (npm; it checks the VAPID token against the
// subscription's applicationServerKey and decrypts aes128gcm bodies with
// http_ece) behind HTTPS. Its own CLI serves plain http://localhost:8090,
// but herald takes only https:// subscription endpoints, so this starts
// the package's express app and model on an HTTPS server with the test
// certificate instead: the routes, checks and decryption are the
// package's, untouched. Every request is logged (JSON lines) with its
// headers and status, so a test can check TTL, Urgency and Topic too.
//
//   node t/fake/webpush-testing.js --module DIR/node_modules/web-push-testing \
//       --cert F --key F [--log F] [--port-file F]
//
// Its API (README): POST /subscribe {userVisibleOnly: "true",
// applicationServerKey} -> {data: {endpoint, keys, clientHash}};
// POST /notify/HASH (the endpoint); POST /get-notifications {clientHash}
// -> {data: {messages: [decrypted text...]}}; POST /expire-subscription/HASH
// (later pushes get 410).
'use strict';

const fs = require('fs');
const https = require('https');
const path = require('path');
const { parseArgs } = require('./rest.js');

const opt = parseArgs({ options: { module: 'module' }, defaults: {} });
const Server = require(path.join(opt.module, 'src/server.js'));
const { PushApiModel } = require(path.join(opt.module, 'src/PushApiModel.js'));

const model = new PushApiModel();
const wpt = new Server(model, 0);
wpt._app.use((req, res, next) => {
  const rec = { at: Date.now(), method: req.method, path: req.url,
                headers: req.headers };
  res.on('finish', () => {
    rec.status = res.statusCode;
    if (opt.log) fs.appendFileSync(opt.log, JSON.stringify(rec) + '\n');
  });
  next();
});
wpt.setRequestHandlers();

const server = https.createServer({ cert: fs.readFileSync(opt.cert),
                                    key: fs.readFileSync(opt.key) }, wpt._app);
server.keepAliveTimeout = 60000;
server.listen(opt.port || 0, '127.0.0.1', () => {
  const port = server.address().port;
  model.notifyUrl = `https://127.0.0.1:${port}/notify/`;
  if (opt.portFile) {
    fs.writeFileSync(opt.portFile + '.tmp', String(port));
    fs.renameSync(opt.portFile + '.tmp', opt.portFile);
  }
  process.stdout.write('port=' + port + '\n');
});
const quit = () => process.exit(0);
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
