#!/usr/bin/env node
// t/fake/twilio.js: a fake Twilio Programmable Messaging API for herald's
// tests (protocols.md 4.1): POST /2010-04-01/Accounts/{sid}/Messages.json
// with basic auth (account SID : auth token), form-encoded To, From or
// MessagingServiceSid, Body, StatusCallback; 201 and a Message resource,
// or Twilio's error body {code, message, more_info, status}.
//
//   node t/fake/twilio.js [--cert F --key F] --account AC... --token T \
//       [--log F] [--port-file F] [--latency-ms N]
//
// Scripted by the last four digits of To:
//   0610 400 21610 unsubscribed         1211 400 21211 invalid To
//   0429 429 20429 once, Retry-After: 1 0500 500 always
//   0503 503 once, Retry-After: 1       0999 never answered
// Every request is one JSON line in --log with the decoded "form" and
// "auth" (the basic credentials as sent).
'use strict';

const crypto = require('crypto');
const { parseArgs, serve, once, form } = require('./rest.js');

const opt = parseArgs({ options: { account: 'account', token: 'token' },
                        defaults: { account: 'AC0123', token: 'secret' } });

function error(reply, status, code, message, headers) {
  reply(status, headers || {}, {
    code, message, more_info: `https://www.twilio.com/docs/errors/${code}`,
    status,
  });
}

serve(opt, (req, body, rec, reply) => {
  const f = form(body);
  rec.form = f;
  const m = /^Basic (.+)$/.exec(req.headers.authorization || '');
  rec.auth = m ? Buffer.from(m[1], 'base64').toString() : null;
  const path = `/2010-04-01/Accounts/${opt.account}/Messages.json`;
  if (req.method !== 'POST' || req.url !== path)
    return error(reply, 404, 20404, 'The requested resource was not found');
  if (rec.auth !== `${opt.account}:${opt.token}`)
    return error(reply, 401, 20003, 'Authenticate');
  if (!/^application\/x-www-form-urlencoded/.test(req.headers['content-type'] || ''))
    return error(reply, 400, 20001, 'bad content type');
  if (!f.To) return error(reply, 400, 21604, "A 'To' phone number is required.");
  if (!f.From && !f.MessagingServiceSid)
    return error(reply, 400, 21603, "A 'From' phone number is required.");
  if (!f.Body) return error(reply, 400, 21602, 'Message body is required.');
  if (!/^\+[1-9]\d{1,14}$/.test(f.To))
    return error(reply, 400, 21211, `The 'To' number ${f.To} is not a valid phone number.`);
  const tail = f.To.slice(-4);
  if (tail === '0610')
    return error(reply, 400, 21610, 'Attempt to send to unsubscribed recipient');
  if (tail === '1211')
    return error(reply, 400, 21211, `The 'To' number ${f.To} is not a valid phone number.`);
  if (tail === '0429' && once('429' + f.To))
    return error(reply, 429, 20429, 'Too Many Requests', { 'Retry-After': '1' });
  if (tail === '0500') return error(reply, 500, 20500, 'Internal Server Error');
  if (tail === '0503' && once('503' + f.To))
    return error(reply, 503, 20503, 'Service Unavailable', { 'Retry-After': '1' });
  if (tail === '0999') { rec.hung = true; return; }
  const sid = 'SM' + crypto.randomBytes(16).toString('hex');
  rec.sid = sid;
  const now = new Date().toUTCString().replace('GMT', '+0000');
  reply(201, {}, {
    account_sid: opt.account, api_version: '2010-04-01', body: f.Body,
    date_created: now, date_sent: null, date_updated: now,
    direction: 'outbound-api', error_code: null, error_message: null,
    from: f.From || null, messaging_service_sid: f.MessagingServiceSid || null,
    num_media: '0', num_segments: '1', price: null, price_unit: 'USD', sid,
    status: f.MessagingServiceSid ? 'accepted' : 'queued',
    subresource_uris: {}, to: f.To,
    uri: `/2010-04-01/Accounts/${opt.account}/Messages/${sid}.json`,
  });
});
