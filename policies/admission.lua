-- Admission: what happens to a queued job (docs/PRODUCT.md §3-§6, §9, §10). Allow it, queue it
-- until a concurrency slot frees, or block it with a reason the workspace can act on.
local pricing = require("pricing")

local admission = {}

-- Concurrency slots: included in every workspace, per architecture, plus purchased extras.
admission.included_slots = { x64 = 40, macos = 40 }

-- Add-ons that change admission.
admission.macos_addon = "macos-m4"
admission.boost_addon = "priority-queue-boost"

local function has(list, wanted)
  for _, item in ipairs(list or {}) do
    if item == wanted then return true end
  end
  return false
end

--- limits(workspace) -> { x64 = n, macos = n }
function admission.limits(workspace)
  return {
    x64 = admission.included_slots.x64 + (workspace.extra_slots_x64 or 0),
    macos = admission.included_slots.macos + (workspace.extra_slots_macos or 0),
  }
end

--- admit(job) -> { decision = "allow" | "queue" | "block" | "foreign", reason, sku, arch, priority, slot_limit }
function admission.admit(job)
  local ws = job.workspace
  local sku, premium_or_reason = pricing.match(job.labels)
  if not sku then return { decision = "foreign", reason = premium_or_reason } end

  local result = { sku = sku.id, arch = sku.arch, priority = has(ws.addons, admission.boost_addon) and 1 or 0 }
  local function block(reason) result.decision = "block"; result.reason = reason; return result end

  if ws.suspended then return block("workspace_suspended") end
  if ws.payment_overdue then return block("payment_overdue") end
  if ws.abuse_action == "block" or ws.abuse_action == "suspend" then return block("abuse") end
  if ws.abuse_action == "require_payment_method" and not ws.has_payment_method then
    return block("payment_method_required")
  end
  if sku.arch == "macos" and not has(ws.addons, admission.macos_addon) then return block("addon_required") end
  -- Without a payment method, free minutes must cover at least one minute of this SKU.
  local per_minute = sku.vcpu // pricing.free_minute_vcpu
  if not ws.has_payment_method and (ws.free_minutes_remaining or 0) < per_minute then
    return block("payment_method_required")
  end

  local limit = admission.limits(ws)[sku.arch]
  result.slot_limit = limit
  local running = sku.arch == "macos" and (ws.running_macos or 0) or (ws.running_x64 or 0)
  if running >= limit then
    result.decision = "queue"
    result.reason = "slot_limit"
    return result
  end
  result.decision = "allow"
  return result
end

local function ws(fields)
  local w = { free_minutes_remaining = 0, has_payment_method = true, addons = {}, running_x64 = 0, running_macos = 0 }
  for k, v in pairs(fields or {}) do w[k] = v end
  return w
end

admission.examples = {
  { name = "a paying workspace with free slots runs", call = "admit",
    input = { labels = { "tenki-4c-8gb" }, workspace = ws() }, expect = { decision = "allow", sku = "x64-4c-8gb", slot_limit = 40 } },
  { name = "the 41st x64 job waits for a slot", call = "admit",
    input = { labels = { "tenki-4c-8gb" }, workspace = ws({ running_x64 = 40 }) }, expect = { decision = "queue", reason = "slot_limit" } },
  { name = "10 extra x64 slots raise the limit to 50", call = "admit",
    input = { labels = { "tenki-4c-8gb" }, workspace = ws({ running_x64 = 45, extra_slots_x64 = 10 }) }, expect = { decision = "allow", slot_limit = 50 } },
  { name = "macOS and x64 limits are separate", call = "admit",
    input = { labels = { "tenki-macos-m4-6c" }, workspace = ws({ running_x64 = 40, addons = { "macos-m4" } }) }, expect = { decision = "allow" } },
  { name = "macOS needs the add-on", call = "admit",
    input = { labels = { "tenki-macos-m4-6c" }, workspace = ws() }, expect = { decision = "block", reason = "addon_required" } },
  { name = "no payment method and no free minutes: blocked", call = "admit",
    input = { labels = { "tenki-2c-4gb" }, workspace = ws({ has_payment_method = false }) },
    expect = { decision = "block", reason = "payment_method_required" } },
  { name = "free minutes admit a trial workspace", call = "admit",
    input = { labels = { "tenki-2c-4gb" }, workspace = ws({ has_payment_method = false, free_minutes_remaining = 1000 }) },
    expect = { decision = "allow" } },
  { name = "an unpaid invoice past the 9th blocks new jobs", call = "admit",
    input = { labels = { "tenki-2c-4gb" }, workspace = ws({ payment_overdue = true, has_payment_method = true }) },
    expect = { decision = "block", reason = "payment_overdue" } },
  { name = "a suspended workspace is blocked", call = "admit",
    input = { labels = { "tenki-2c-4gb" }, workspace = ws({ suspended = true }) }, expect = { decision = "block", reason = "workspace_suspended" } },
  { name = "boosted workspaces get priority", call = "admit",
    input = { labels = { "tenki-2c-4gb" }, workspace = ws({ addons = { "priority-queue-boost" } }) }, expect = { priority = 1 } },
  { name = "foreign labels are not ours", call = "admit",
    input = { labels = { "ubuntu-latest" }, workspace = ws() }, expect = { decision = "foreign" } },
}

return admission
