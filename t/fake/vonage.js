#!/usr/bin/env node
// t/fake/vonage.js: a fake Vonage (Nexmo) SMS API for herald's tests
// (protocols.md 4.2): POST /sms/json, form-encoded api_key, api_secret,
// from, to (E.164 digits without '+'), text, type; answers 200 with
// {"message-count", "messages": [{status, ...}]} even for errors.
//
//   node t/fake/vonage.js [--cert F --key F] --api-key K --api-secret S \
//       [--log F] [--port-file F]
//
// Scripted by the last four digits of to:
//   0001 status 1 throttled once   0007 status 7 number barred
//   0003 status 3 invalid params   0599 HTTP 500 always
'use strict';

const crypto = require('crypto');
const { parseArgs, serve, once, form } = require('./rest.js');

const opt = parseArgs({ options: { 'api-key': 'apiKey', 'api-secret': 'apiSecret' },
                        defaults: { apiKey: 'key', apiSecret: 'secret' } });

serve(opt, (req, body, rec, reply) => {
  const f = form(body);
  rec.form = f;
  const part = (status, text) => reply(200, {}, {
    'message-count': '1', messages: [{ status: String(status), 'error-text': text }],
  });
  if (req.method !== 'POST' || req.url !== '/sms/json')
    return reply(404, {}, { error: 'not found' });
  if (f.api_key !== opt.apiKey || f.api_secret !== opt.apiSecret)
    return part(4, 'Bad Credentials');
  if (!f.from || !f.to || !f.text) return part(2, 'Missing params');
  if (!/^[1-9]\d{1,14}$/.test(f.to)) return part(3, 'Invalid to param');
  if (f.type && f.type !== 'text' && f.type !== 'unicode')
    return part(3, 'Invalid type');
  const tail = f.to.slice(-4);
  if (tail === '0001' && once('1' + f.to)) return part(1, 'Throughput Rate Exceeded');
  if (tail === '0007') return part(7, 'Number barred');
  if (tail === '0003') return part(3, 'Invalid to param');
  if (tail === '0599') return reply(500, {}, { error: 'internal' });
  const id = crypto.randomBytes(8).toString('hex').toUpperCase();
  rec.message_id = id;
  reply(200, {}, {
    'message-count': '1',
    messages: [{ to: f.to, 'message-id': id, status: '0',
                 'remaining-balance': '15.53590000', 'message-price': '0.03330000',
                 network: '23410', 'client-ref': f['client-ref'] }],
  });
});
