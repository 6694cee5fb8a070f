#!/usr/bin/env node
// t/fake/sendgrid.js: a fake SendGrid v3 Mail Send API for herald's tests
// (protocols.md 5.7): POST /v3/mail/send with "Authorization: Bearer
// KEY" and a JSON body checked as SendGrid does (personalizations with a
// to, from.email, subject, content with text/plain before text/html, each
// type once and non-empty). 202 with X-Message-Id; errors as
// {"errors":[{message, field, help}]}; X-RateLimit-* on every answer.
//
//   node t/fake/sendgrid.js [--cert F --key F] --api-key K [--log F] \
//       [--port-file F]
//
// Scripted by the first recipient's local part:
//   rate*  429 once (X-RateLimit-Reset: now + 1 s)   bad*  400 always
//   down*  503 once
'use strict';

const crypto = require('crypto');
const { parseArgs, serve, once } = require('./rest.js');

const opt = parseArgs({ options: { 'api-key': 'apiKey' },
                        defaults: { apiKey: 'SG.test' } });

serve(opt, (req, body, rec, reply) => {
  const reset = String(Math.floor(Date.now() / 1000) + 1);
  const rl = { 'X-RateLimit-Limit': '600', 'X-RateLimit-Remaining': '599',
               'X-RateLimit-Reset': reset };
  const err = (status, message, field, extra) =>
    reply(status, { ...rl, ...(extra || {}) },
          { errors: [{ message, field: field || null, help: null }] });
  if (req.method !== 'POST' || req.url !== '/v3/mail/send')
    return err(404, 'not found');
  if (req.headers.authorization !== `Bearer ${opt.apiKey}`)
    return err(401, 'The provided authorization grant is invalid, expired, or revoked');
  if (!/^application\/json/.test(req.headers['content-type'] || ''))
    return err(415, 'Content-Type should be application/json.');
  let m;
  try { m = JSON.parse(body); } catch (e) { return err(400, 'Bad Request', null); }
  rec.json = m;
  const p = m.personalizations;
  if (!Array.isArray(p) || p.length < 1 || !Array.isArray(p[0].to) || !p[0].to.length
      || !p[0].to[0].email)
    return err(400, 'The personalizations field is required and must have at least one personalization.', 'personalizations');
  if (!m.from || !m.from.email) return err(400, 'The from object must be provided for every email send.', 'from');
  if (!m.subject && !p[0].subject) return err(400, 'The subject is required.', 'subject');
  const c = m.content;
  if (!Array.isArray(c) || !c.length) return err(400, 'Unless a valid template_id is provided, the content parameter is required.', 'content');
  const types = c.map((x) => x.type);
  if (new Set(types).size !== types.length)
    return err(400, 'If present, text/plain and text/html may only be provided once.', 'content');
  if (types.indexOf('text/plain') > 0) return err(400, 'The text/plain content type must be first.', 'content');
  if (c.some((x) => typeof x.value !== 'string' || !x.value.length))
    return err(400, 'The content value must be a string at least one character in length.', 'content.0.value');
  const lp = p[0].to[0].email.split('@')[0].toLowerCase();
  if (lp.startsWith('rate') && once('rate' + p[0].to[0].email))
    return err(429, 'too many requests', null, { 'X-RateLimit-Remaining': '0' });
  if (lp.startsWith('bad')) return err(400, 'Does not contain a valid address.', 'personalizations.0.to.0.email');
  if (lp.startsWith('down') && once('down' + p[0].to[0].email))
    return err(503, 'Service Unavailable', null, { 'Retry-After': '1' });
  const id = crypto.randomBytes(11).toString('base64url');
  rec.message_id = id;
  reply(202, { ...rl, 'X-Message-Id': id, 'Content-Length': '0' }, '');
});
