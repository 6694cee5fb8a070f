-- bench/batch.lua: wrk script for bench/ingest MODE=batch.
-- Sends POST /v1/notifications/batch, a JSON array of BATCH notifications,
-- user_id cycling over u1..uUSERS (each thread starts at its own offset),
-- Basic auth. The items are the mix of bench/mix.lua without the
-- Idempotency-Key header: shorthand title/body without channels (fan-out to
-- every channel and device), 15% category "marketing", 10% priority "high",
-- 3% send_at (fixed when wrk starts: 120 s ahead), a fixed pseudo-random
-- sequence, the same for every server.
-- A response is good when it is 200; in a good response every per-item
-- "status" is read: 202 counts as an accepted notification, anything else as
-- an item error (the first few are printed). At the end prints one
-- "@@ key=value ..." line that bench/ingest parses (non202 there = requests
-- not answered 200).
--
-- Usage: wrk -t1 -c64 -d10s --latency -s bench/batch.lua URL -- USERS BATCH [KEYID:SECRET]
-- defaults: 1000 users, 100 per batch, demo:demo-secret.

local USERS = 1000
local BATCH = 100
local CRED = "demo:demo-secret"
local SHOW_MAX = 5 -- unexpected responses / item errors printed per thread

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

local seed = 12345
local function rnd() -- [0, 1), the same sequence on every wrk build
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

local function item(n, send_at)
    local parts = { '{"user_id":"u', tostring(n), '"' }
    local t = TEXTS[1 + math.floor(rnd() * #TEXTS)]
    if rnd() < 0.15 then
        t = PROMO
        parts[#parts + 1] = ',"category":"marketing"'
    end
    if rnd() < 0.10 then parts[#parts + 1] = ',"priority":"high"' end
    if rnd() < 0.03 then parts[#parts + 1] = ',"send_at":"' .. send_at .. '"' end
    parts[#parts + 1] = ',"title":"' .. t[1] .. '","body":"' .. t[2] .. '"'
    if rnd() < 0.2 then
        parts[#parts + 1] = ',"data":{"order_id":"48213","deep_link":"app://orders/48213"}'
    end
    parts[#parts + 1] = "}"
    return table.concat(parts)
end

function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

local reqs, nreq, idx
ok, bad, codes, shown, items_ok, items_bad, item_codes, body_bytes = 0, 0, "", 0, 0, 0, "", 0
local code_count, item_count = {}, {}

local function join(t)
    local parts = {}
    for k, v in pairs(t) do parts[#parts + 1] = k .. ":" .. v end
    return table.concat(parts, ",")
end

function init(args)
    if args[1] ~= nil then USERS = tonumber(args[1]) end
    if args[2] ~= nil then BATCH = tonumber(args[2]) end
    batch_n = BATCH -- a global: done() (main state) reads it from a thread
    if args[3] ~= nil then CRED = args[3] end
    local headers = {
        ["Authorization"] = "Basic " .. b64(CRED),
        ["Content-Type"] = "application/json",
    }
    local send_at = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + 120)
    -- enough batches to cover every user at least once (and 20 at least)
    nreq = math.max(20, math.ceil(USERS / BATCH))
    reqs = {}
    local n = 0
    for r = 1, nreq do
        local its = {}
        for i = 1, BATCH do
            n = n % USERS + 1
            its[i] = item(n, send_at)
        end
        local body = "[" .. table.concat(its, ",") .. "]"
        body_bytes = #body
        reqs[r] = wrk.format("POST", "/v1/notifications/batch", headers, body)
    end
    idx = ((tid or 0) * 7) % nreq
end

function request()
    idx = idx + 1
    if idx > nreq then idx = 1 end
    return reqs[idx]
end

local function show(fmt, ...)
    if shown < SHOW_MAX then
        shown = shown + 1
        io.stderr:write(string.format(fmt, ...))
    end
end

function response(status, headers, body)
    if status ~= 200 then
        bad = bad + 1
        code_count[status] = (code_count[status] or 0) + 1
        codes = join(code_count)
        show("batch.lua: unexpected response %d: %s\n", status, tostring(body):sub(1, 300))
        return
    end
    ok = ok + 1
    local changed = false
    for s in body:gmatch('"index":%d+,"status":(%d+)') do
        if s == "202" then
            items_ok = items_ok + 1
        else
            items_bad = items_bad + 1
            item_count[s] = (item_count[s] or 0) + 1
            changed = true
        end
    end
    if changed then
        item_codes = join(item_count)
        local at = body:find('"status":[^2]') or body:find('"status":2[^0]') or 1
        show("batch.lua: item error(s) in a 200: ...%s\n", body:sub(math.max(1, at - 40), at + 260))
    end
end

function done(summary, latency, requests)
    local t = { ok = 0, bad = 0, items_ok = 0, items_bad = 0 }
    local merged, imerged = {}, {}
    for _, th in ipairs(threads) do
        for k in pairs(t) do t[k] = t[k] + (th:get(k) or 0) end
        for k, v in (th:get("codes") or ""):gmatch("(%d+):(%d+)") do
            merged[k] = (merged[k] or 0) + tonumber(v)
        end
        for k, v in (th:get("item_codes") or ""):gmatch("(%d+):(%d+)") do
            imerged[k] = (imerged[k] or 0) + tonumber(v)
        end
    end
    local cl, il = join(merged), join(imerged)
    local bb = threads[1] and threads[1]:get("body_bytes") or 0
    local bn = threads[1] and threads[1]:get("batch_n") or BATCH
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format(
        "@@ requests=%d ok=%d ok200=%d non202=%d codes=%s rps=%.1f"
        .. " batch=%d body_bytes=%d items_ok=%d items_bad=%d item_codes=%s nps=%.1f"
        .. " p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.0f"
        .. " err_connect=%d err_read=%d err_write=%d err_timeout=%d"
        .. " err_status=%d secs=%.2f bytes=%d\n",
        summary.requests, t.ok, t.ok, t.bad, (cl ~= "" and cl or "-"),
        summary.requests / secs,
        bn, bb, t.items_ok, t.items_bad, (il ~= "" and il or "-"),
        t.items_ok / secs,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9), latency.max,
        latency.mean,
        e.connect, e.read, e.write, e.timeout, e.status, secs,
        summary.bytes))
end
