-- wrk script: cycles through "PATH CLIENT_ACCOUNT_ID ENGAGEMENT_ID" lines of the file named by
-- the PATHS environment variable, sending each request with its tenant headers.
local requests = {}
local index = 0

function init(args)
    local file = assert(io.open(os.getenv("PATHS"), "r"))
    for line in file:lines() do
        local path, client, engagement = line:match("^(%S+)%s+(%S+)%s+(%S+)$")
        if path then
            requests[#requests + 1] = wrk.format("GET", path, {
                ["X-Client-Account-Id"] = client,
                ["X-Engagement-Id"] = engagement,
                ["X-Client-Name"] = "flowkey-bench",
            })
        end
    end
    file:close()
    -- Threads start at different offsets so they do not walk in lockstep.
    index = math.random(#requests)
end

function request()
    index = index % #requests + 1
    return requests[index]
end

function done(summary, latency, requests_done)
    io.write(string.format("FIGURES requests=%d errors=%d non2xx=%d p50_us=%d p99_us=%d max_us=%d duration_us=%d\n",
        summary.requests,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
        summary.errors.status,
        latency:percentile(50), latency:percentile(99), latency.max, summary.duration))
end
