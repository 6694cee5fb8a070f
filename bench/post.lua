-- bench/post.lua: wrk script for bench/ingest.
-- Sends POST /v1/notifications with a 300-byte JSON body, user_id cycling
-- over u1..uUSERS (each thread starts at its own offset), Basic auth.
-- Counts every response that is not 202 and prints the first few of them.
-- At the end prints one "@@ key=value ..." line that bench/ingest parses.
--
-- Usage: wrk -t1 -c64 -d10s --latency -s bench/post.lua URL [-- USERS KEYID:SECRET]
-- defaults: 1000 users, demo:demo-secret.

local USERS = 1000
local CRED = "demo:demo-secret"
local BODY_BYTES = 300
local SHOW_MAX = 5 -- non-202 responses printed per thread

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

-- main thread: number the threads so each starts at a different user
function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

local reqs, nreq, idx
ok, bad, codes, shown = 0, 0, "", 0
local code_count = {}

function init(args)
    if args[1] ~= nil then USERS = tonumber(args[1]) end
    if args[2] ~= nil then CRED = args[2] end
    local headers = {
        ["Authorization"] = "Basic " .. b64(CRED),
        ["Content-Type"] = "application/json",
    }
    local text = "Your order #1234567 has shipped and is on its way. "
        .. "Track it in the app or on the web; expected delivery is "
        .. "within two to three business days. Thank you for shopping "
        .. "with us, and reply STOP to opt out of these messages at any "
        .. "time. xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    reqs = {}
    for n = 1, USERS do
        local head = '{"user_id":"u' .. n
            .. '","channels":["email"],"title":"Order shipped","body":"'
        local tail = '"}'
        local fill = BODY_BYTES - #head - #tail
        local body = head .. text:sub(1, fill) .. tail
        reqs[n] = wrk.format("POST", "/v1/notifications", headers, body)
    end
    nreq = USERS
    -- spread the threads' starting points over the user range
    idx = ((tid or 0) * 997) % nreq
end

function request()
    idx = idx + 1
    if idx > nreq then idx = 1 end
    return reqs[idx]
end

function response(status, headers, body)
    if status == 202 then
        ok = ok + 1
        return
    end
    bad = bad + 1
    code_count[status] = (code_count[status] or 0) + 1
    local parts = {}
    for k, v in pairs(code_count) do parts[#parts + 1] = k .. ":" .. v end
    codes = table.concat(parts, ",")
    if shown < SHOW_MAX then
        shown = shown + 1
        io.stderr:write(string.format("post.lua: non-202 response %d: %s\n",
            status, tostring(body):sub(1, 300)))
    end
end

function done(summary, latency, requests)
    local tok, tbad, merged = 0, 0, {}
    for _, t in ipairs(threads) do
        tok = tok + (t:get("ok") or 0)
        tbad = tbad + (t:get("bad") or 0)
        local c = t:get("codes") or ""
        for k, v in c:gmatch("(%d+):(%d+)") do
            merged[k] = (merged[k] or 0) + tonumber(v)
        end
    end
    local cl = {}
    for k, v in pairs(merged) do cl[#cl + 1] = k .. ":" .. v end
    local e = summary.errors
    local secs = summary.duration / 1e6
    io.write(string.format(
        "@@ requests=%d ok202=%d non202=%d codes=%s rps=%.1f"
        .. " p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.0f"
        .. " err_connect=%d err_read=%d err_write=%d err_timeout=%d"
        .. " err_status=%d secs=%.2f bytes=%d\n",
        summary.requests, tok, tbad, (#cl > 0 and table.concat(cl, ",") or "-"),
        summary.requests / secs,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency:percentile(99.9), latency.max,
        latency.mean,
        e.connect, e.read, e.write, e.timeout, e.status, secs,
        summary.bytes))
end
