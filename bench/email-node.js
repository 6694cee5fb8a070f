#!/usr/bin/env node
// bench/email-node.js: the reference for bench/email: N messages sent with
// nodemailer's SMTP pool transport (STARTTLS required and verified against
// the test CA, AUTH PLAIN) to the same SMTP server herald sent to, the same
// text + html parts. Prints one JSON line: sent, failed, secs (first send to
// last callback), rate, cpu_us (this process, user+system), cpu_us_per_msg.
//
//   NODE_PATH=bench/out/npm/node_modules node bench/email-node.js \
//       PORT CA USER PASS N CONNS
'use strict';

const fs = require('fs');
const nodemailer = require('nodemailer');

const [port, ca, user, pass, nStr, connsStr] = process.argv.slice(2);
const N = +nStr, conns = +connsStr;
const transport = nodemailer.createTransport({
  pool: true, maxConnections: conns, maxMessages: Infinity,
  host: '127.0.0.1', port: +port, secure: false, requireTLS: true,
  auth: { user, pass }, tls: { ca: fs.readFileSync(ca), servername: 'localhost' },
  name: 'nodemailer.bench',
});

const text = (i) => `Hello user ${i},\n\nYour order #${i} has shipped and is on its way.\n`
  + 'Track it any time from your account page.\n\n-- Acme\n';
const html = (i) => `<html><body><p>Hello user ${i},</p><p>Your order <b>#${i}</b> has `
  + 'shipped and is on its way.</p><p>Track it any time from your account page.</p>'
  + '<p>-- Acme</p></body></html>';

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
let done = 0, failed = 0, firstErr = null;
for (let i = 1; i <= N; i++) {
  transport.sendMail({
    from: '"Acme Alerts" <alerts@example.org>', to: `user${i}@example.net`,
    subject: `Order ${i} shipped`, text: text(i), html: html(i),
  }, (err) => {
    if (err) { failed++; if (!firstErr) firstErr = String(err); }
    if (++done === N) {
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const c = process.cpuUsage(cpu0);
      const cpu = c.user + c.system;
      console.log(JSON.stringify({ sent: N - failed, failed, firstErr, secs,
        rate: (N - failed) / secs, cpu_us: cpu, cpu_us_per_msg: cpu / N }));
      transport.close();
      setTimeout(() => process.exit(0), 100);
    }
  });
}
