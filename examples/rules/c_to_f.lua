-- Celsius to Fahrenheit. As a SQL scalar function: SELECT c_to_f(temperature) AS f FROM demo
-- (handle gets the SQL arguments and returns the result). As a rule sink or topic trigger,
-- handle gets an event table: convert its payload and emit it.
function handle(x)
  if type(x) == "number" then
    return x * 9 / 5 + 32
  end
  local t = x.payload and x.payload.temperature
  if t == nil then return end
  emit("fahrenheit/" .. (x.payload.deviceId or "unknown"), {deviceId = x.payload.deviceId, f = t * 9 / 5 + 32})
end
