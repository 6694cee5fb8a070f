-- bench/mix.lua: wrk script for bench/ingest MODE=mix.
-- Sends POST /v1/notifications with a realistic mix of bodies, user_id
-- cycling over u1..uUSERS (each thread starts at its own offset), Basic auth:
--   every request: shorthand title/body, no channels (herald fans out to
--     every channel and device of the user)
--   15% category "marketing", 10% priority "high", 3% send_at 60 s ahead
--     (taken at send time), 10% with an Idempotency-Key header (unique per
--     request; 1 in 10 of them repeats the previous keyed request, key, user and
--     body, a client retry, which herald answers 200 "duplicate")
-- The choice is a fixed pseudo-random sequence, the same on every run and for
-- every server (bench/batch.lua uses the same item mix). 202 and 200 count
-- as accepted; everything else is counted and
-- the first few are printed. At the end prints one "@@ key=value ..." line
-- that bench/ingest parses.
--
-- Usage: wrk -t1 -c64 -d10s --latency -s bench/mix.lua URL [-- USERS KEYID:SECRET]
-- defaults: 1000 users, demo:demo-secret.

local USERS = 1000
local CRED = "demo:demo-secret"
local SHOW_MAX = 5 -- unexpected responses printed per thread
local MIX_SIZE = 4000 -- distinct prepared requests (the cycle)

local threads = {}

local function b64(s)
    local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    local out = {}
    for i = 1, #s, 3 do
        local a, b, c = s:byte(i, i + 2)
        local n = a * 65536 + (b or 0) * 256 + (c or 0)
        local q = {}
        for k = 3, 0, -1 do
            local v = math.floor(n / 64 ^ k) % 64
            q[#q + 1] = abc:sub(v + 1, v + 1)
        end
        if c == nil then q[4] = "=" end
        if b == nil then q[3] = "=" end
        out[#out + 1] = table.concat(q)
    end
    return table.concat(out)
end

-- a small LCG: the same sequence on every wrk build (math.random is not)
local seed = 12345
local function rnd() -- [0, 1)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
end

local TEXTS = {
    { "Your order has shipped", "Order 48213 left our warehouse today and should arrive within 2-3 business days. Track it in the app." },
    { "New sign-in", "We noticed a new sign-in to your account from Firefox on Linux. If this was not you, reset your password now." },
    { "Payment received", "Thanks! We received your payment of 42.00 EUR. Your receipt is in the app under Account > Billing." },
    { "Your driver is near", "Sam is 3 minutes away in a grey Skoda Octavia, plate AB-123-CD." },
}
local PROMO = { "Weekend sale", "Up to 40% off everything in the outdoor range until Sunday midnight. Reply STOP to opt out." }

-- the JSON of one notification for user n, and its kind (flags)
local function mix_item(n, send_at)
    local parts = { '{"user_id":"u', tostring(n), '"' }
    local t = TEXTS[1 + math.floor(rnd() * #TEXTS)]
    local x = rnd()
    local kind = {}
    if x < 0.15 then
        t = PROMO
        parts[#parts + 1] = ',"category":"marketing"'
        kind.marketing = true
    end
    if rnd() < 0.10 then
        parts[#parts + 1] = ',"priority":"high"'
        kind.high = true
    end
    if rnd() < 0.03 then
        kind.scheduled = true
        if send_at then
            parts[#parts + 1] = ',"send_at":"' .. send_at .. '"'
        end
    end
    parts[#parts + 1] = ',"title":"' .. t[1] .. '","body":"' .. t[2] .. '"'
    if rnd() < 0.2 then
        parts[#parts + 1] = ',"data":{"order_id":"48213","deep_link":"app://orders/48213"}'
    end
    parts[#parts + 1] = "}"
    return table.concat(parts), kind
end

function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

local items, headers, nreq, idx, keyseq, lastkey, lastbody
ok, ok202, ok200, bad, codes, shown, nsched, nkeyed, nretry = 0, 0, 0, 0, "", 0, 0, 0, 0
local code_count = {}

local function send_at_soon()
    return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 60)
end

function init(args)
    if args[1] ~= nil then USERS = tonumber(args[1]) end
    if args[2] ~= nil then CRED = args[2] end
    headers = {
        ["Authorization"] = "Basic " .. b64(CRED),
        ["Content-Type"] = "application/json",
    }
    -- the cycle: MIX_SIZE requests (at least one per user), prepared where
    -- nothing changes at send time
    items = {}
    local size = math.max(MIX_SIZE, USERS)
    for i = 1, size do
        local n = ((i - 1) % USERS) + 1
        local body, kind = mix_item(n, nil)
        local it = { n = n, kind = kind }
        if kind.scheduled then
            it.body = body -- send_at is added at send time
        elseif rnd() < 0.10 then
            it.keyed = true
            it.retry = rnd() < 0.10
            it.body = body
        else
            it.req = wrk.format("POST", "/v1/notifications", headers, body)
        end
        items[i] = it
    end
    nreq = size
    idx = ((tid or 0) * 997) % nreq
    keyseq = 0
    lastkey = nil
end

function request()
    idx = idx + 1
    if idx > nreq then idx = 1 end
    local it = items[idx]
    if it.req then return it.req end
    if it.kind.scheduled then
        nsched = nsched + 1
        local body = it.body:sub(1, -2) .. ',"send_at":"' .. send_at_soon() .. '"}'
        return wrk.format("POST", "/v1/notifications", headers, body)
    end
    -- keyed: a fresh key, or (a retry) the previous keyed request again,
    -- same key, same user (keys are scoped to the user), same body
    nkeyed = nkeyed + 1
    local key, body = nil, it.body
    if it.retry and lastkey then
        key, body = lastkey, lastbody
        nretry = nretry + 1
    else
        keyseq = keyseq + 1
        key = string.format("bench-%d-%d-%d", tid or 0, os.time(), keyseq)
        lastkey, lastbody = key, it.body
    end
    local h = {
        ["Authorization"] = headers["Authorization"],
        ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = key,
    }
    return wrk.format("POST", "/v1/notifications", h, body)
end

function response(status, hdrs, body)
    if status == 202 then
        ok = ok + 1
        ok202 = ok202 + 1
        return
    end
    if status == 200 then
        ok = ok + 1
        ok200 = ok200 + 1
        return
    end
    bad = bad + 1
    code_count[status] = (code_count[status] or 0) + 1
    local parts = {}
    for k, v in pairs(code_count) do parts[#parts + 1] = k .. ":" .. v end
    codes = table.concat(parts, ",")
    if shown < SHOW_MAX then
        shown = shown + 1
        io.stderr:write(string.format("mix.lua: unexpected response %d: %s\n",
            status, tostring(body):sub(1, 300)))
    end
end

function done(summary, latency, requests)
    local t = { ok = 0, ok202 = 0, ok200 = 0, bad = 0, nsched = 0, nkeyed = 0, nretry = 0 }
    local merged = {}
    for _, th in ipairs(threads) do
        for k in pairs(t) do t[k] = t[k] + (th:get(k) or 0) end
        local c = th:get("codes") or ""
        for k, v in c:gmatch("(%d+):(%d+)") do
            merged[k] = (merged[k] or 0) + tonumber(v)
        end
    end
    local cl = {}
    for k, v in pairs(merged) do cl[#cl + 1] = k .. ":" .. v end
    local e = summary.errors
    local secs = summary.duration / 1e6
    -- non202 = unexpected (neither 202 nor 200), the name bench/ingest reads
    io.write(string.format(
        "@@ requests=%d ok=%d ok202=%d ok200=%d non202=%d codes=%s rps=%.1f"
        .. " sent_scheduled=%d sent_keyed=%d sent_retries=%d"
        .. " p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.0f"
        .. " err_connect=%d err_read=%d err_write=%d err_timeout=%d"
        .. " err_status=%d secs=%.2f bytes=%d\n",
        summary.requests, t.ok, t.ok202, t.ok200, t.bad,
        (#cl > 0 and table.concat(cl, ",") or "-"),
        summary.requests / secs, t.nsched, t.nkeyed, t.nretry,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9), latency.max,
        latency.mean,
        e.connect, e.read, e.write, e.timeout, e.status, secs,
        summary.bytes))
end
