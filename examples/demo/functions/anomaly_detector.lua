-- Anomalies in temperature and power telemetry, per device, against a learned baseline.
-- Triggered by sites/+/+/+/telemetry; raises alerts on alerts/<device> (the uplink route
-- sends them to the cloud as class "alert"):
--   overheat      temperature more than 5 C above the device's baseline
--   stuck_sensor  the same temperature reading four times in a row
--   spike         power more than 1.5 times the device's baseline
-- The baseline is an exponentially weighted mean that does not learn from anomalous readings.
local baseline = {}  -- device -> mean
local repeats = {}   -- device -> {value, count}

local function alert(p, kind)
  emit("alerts/" .. p.device, {device = p.device, event_seq = p.seq, ts = p.ts, alert = kind}, 1)
end

local function learn(device, value)
  local b = baseline[device]
  baseline[device] = b + 0.1 * (value - b)
end

function handle(event)
  local p = event.payload
  if type(p) ~= "table" or p.device == nil or p.seq == nil then return end
  local t = p.temperature_c
  if t ~= nil then
    if baseline[p.device] == nil then baseline[p.device] = t return end
    local r = repeats[p.device]
    if r ~= nil and r.value == t then r.count = r.count + 1 else repeats[p.device] = {value = t, count = 1} end
    if repeats[p.device].count >= 4 then alert(p, "stuck_sensor") return end
    if t > baseline[p.device] + 5 then alert(p, "overheat") return end
    learn(p.device, t)
    return
  end
  local kw = p.power_kw
  if kw ~= nil then
    if baseline[p.device] == nil then baseline[p.device] = kw return end
    if kw > baseline[p.device] * 1.5 then alert(p, "spike") return end
    learn(p.device, kw)
  end
end
