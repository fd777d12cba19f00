-- Stops each wrk thread after WRK_MAX_REQUESTS responses (0 or unset: no limit),
-- so that a run is bounded by count as well as by wrk's -d duration.
local limit = tonumber(os.getenv("WRK_MAX_REQUESTS") or "0") or 0
local seen = 0

function response(status, headers, body)
  seen = seen + 1
  if limit > 0 and seen >= limit then
    wrk.thread:stop()
  end
end
