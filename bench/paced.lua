-- wrk pacing for bench/guest.sh: each connection waits a random 0..2×PACE_MS (mean PACE_MS)
-- before each request, so 100 connections stay open with a bounded offered load and the
-- latency measured is the server's, not the queue's behind 99 other back-to-back requests.
local pace_ms = tonumber(os.getenv("PACE_MS") or "100")

function delay()
	return math.random(0, 2 * pace_ms)
end
