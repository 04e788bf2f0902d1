-- Tells a team when billing needs attention: an invoice issued, a payment that failed, a
-- workspace suspended for non-payment, the payment that settled it. Each event POSTs one JSON
-- message ({"text": ...}, the shape Slack's and most chat tools' incoming webhooks take) to
-- NOTIFY_URL. Copy it to scripts/ to run it, set NOTIFY_URL, and list its host in
-- script_http_allowed_hosts.
local NOTIFY_URL = "https://hooks.example.com/tenki-billing"

local function dollars(cents)
  return string.format("$%d.%02d", cents // 100, cents % 100)
end

local messages = {
  ["invoice.issued"] = function(e)
    return "Invoice " .. e.number .. " (" .. e.period .. ") issued to " .. e.workspace_id .. ": " .. dollars(e.amount_due_cents) .. " due"
  end,
  ["payment.failed"] = function(e)
    return "Payment attempt " .. e.attempt .. " for " .. e.workspace_id .. " failed (" .. e.code .. "); it is retried on the dunning schedule"
  end,
  ["workspace.suspended"] = function(e)
    return e.workspace_id .. " is suspended for non-payment: new jobs wait until invoice " .. e.invoice_id .. " is paid"
  end,
  ["payment.succeeded"] = function(e)
    return e.workspace_id .. " paid " .. dollars(e.amount_cents) .. " (invoice " .. e.invoice_id .. ")"
  end,
}

--- A JSON string literal (the message is all the body carries).
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

return {
  on = {"invoice.issued", "payment.failed", "workspace.suspended", "payment.succeeded"},
  run = function(input)                  -- input.payload: the billing event's fields
    local text = messages[input.topic](input.payload)
    local answer = workflow.step("notify", function()
      return http.request{
        method = "POST", url = NOTIFY_URL,
        headers = {["content-type"] = "application/json"},
        body = '{"text":' .. quote(text) .. '}',
      }
    end, {maximum_attempts = 5, initial_interval = 10})
    if answer.status >= 300 then error("the webhook answered " .. answer.status) end
    return {notified = true, text = text, status = answer.status, answer = answer.body}
  end,
}
