-- Unknown badges: the same badge refused twice in a row at one reader raises unknown_badge
-- on alerts/<reader>. One refusal alone is a staff member's mistake, not an alert.
-- Triggered by sites/+/badge/+/events. Badge ids stay on the site: the data policy hashes
-- them before anything goes up (sites/*.yaml, uplink.policy.fields).
local last_refused = {}  -- reader -> badge id of its last refused attempt

function handle(event)
  local p = event.payload
  if type(p) ~= "table" or p.reader == nil then return end
  if p.result == "denied" then
    if last_refused[p.reader] == p.badge_id then
      emit("alerts/" .. p.device, {device = p.device, event_seq = p.seq, ts = p.ts,
                                   alert = "unknown_badge", reader = p.reader}, 1)
    end
    last_refused[p.reader] = p.badge_id
  else
    last_refused[p.reader] = nil
  end
end
