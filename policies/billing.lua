-- Monthly invoice lines besides usage (docs/PRODUCT.md §4-§8): add-ons, extra concurrency slots,
-- storage, the contract commitment true-up and the monthly free credit; and the signup grant.
-- Amounts are integer micro-cents.
local billing = {}

-- Every new workspace gets this many free minutes (normalised to 2 vCPU), once.
billing.signup_free_minutes = 1000

-- Each month, usage charges up to this amount are covered; what is unused does not carry over.
billing.monthly_credit_micros = money.usd(10)

billing.addons = {
  ["macos-m4"] = { name = "macOS M4 access", monthly = money.usd(39), prepaid_12 = money.usd(399) },
  ["priority-support"] = { name = "Priority support", monthly = money.usd(250) },
  ["priority-queue-boost"] = { name = "Priority queue boost", monthly = money.usd(49), prepaid_12 = money.usd(499) },
}

billing.slot_prices = { x64 = money.usd(7), macos = money.usd(49) }

-- Storage: $0.20 per GB-month (GB = 10^9 bytes) on the period's average of daily snapshots.
-- Snapshots report billable bytes: the 10 GB transparent cache is never in them.
billing.storage_per_gb_month = money.parse("0.20")
local BYTES_PER_GB = 1000000000

local DAY = 86400

--- Days of the period [from, to) during which something that started at `started` and was
--- cancelled at `cancelled` is billed: from its first day, and (cancellation keeps it to the end
--- of the cycle) through the end of the period unless it was cancelled before the period began.
local function billed_days(period_start, period_end, started, cancelled)
  if started >= period_end then return 0 end
  if cancelled and cancelled < period_start then return 0 end
  local first = started > period_start and started or period_start
  local first_day = period_start + ((first - period_start) // DAY) * DAY
  return (period_end - first_day) // DAY
end

local function line(kind, description, quantity, unit, amount)
  return { kind = kind, description = description, quantity = quantity, unit_price_micros = unit, amount_micros = amount }
end

--- The workspace's contract commitment for the period, if its contract is in force at the
--- period's start (contracts/<name>.lua).
local function contract_commitment(name, period_start)
  if type(name) ~= "string" or not name:match("^[%w_%-]+$") then error("bad contract name '" .. tostring(name) .. "'") end
  local contract = require("contracts." .. name)
  if period_start < date.parse(contract.starts) or period_start >= date.parse(contract.ends) then return nil end
  return contract.monthly_commitment_micros
end

--- monthly_lines(input) -> { lines = { { kind, description, quantity, unit_price_micros, amount_micros } }, total_micros }
--- input: period = { start, ["end"] } (UTC), addons = { { id, term = "monthly"|"prepaid_12", started_at, cancelled_at? } },
--- slots = { { arch, count, started_at, cancelled_at? } }, storage = { daily_bytes = { ... } },
--- usage_micros = the period's usage charges after discounts (for the commitment),
--- credited_usage_micros = the usage charges on this invoice the monthly credit may cover,
--- contract = the workspace's contract name, or commitment = { monthly_micros, usage_micros } (optional)
function billing.monthly_lines(input)
  local p_start, p_end = date.parse(input.period.start), date.parse(input.period["end"])
  local days = (p_end - p_start) // DAY
  if days <= 0 then error("the period must end after it starts") end
  local lines, total = {}, 0
  local function add(l)
    lines[#lines + 1] = l
    total = money.add(total, l.amount_micros)
  end

  for _, a in ipairs(input.addons or {}) do
    local addon = billing.addons[a.id]
    if not addon then error("unknown add-on '" .. tostring(a.id) .. "'") end
    local started = date.parse(a.started_at)
    if a.term == "prepaid_12" then
      if not addon.prepaid_12 then error(addon.name .. " has no prepaid term") end
      -- Billed once, up front, in the period it starts.
      if started >= p_start and started < p_end then
        add(line("addon", addon.name .. ", 12 months prepaid", 1, addon.prepaid_12, addon.prepaid_12))
      end
    else
      local n = billed_days(p_start, p_end, started, a.cancelled_at and date.parse(a.cancelled_at))
      if n > 0 then
        local amount = money.muldiv(addon.monthly, n, days, "half_up")
        local text = n == days and addon.name or (addon.name .. " (" .. n .. " of " .. days .. " days)")
        add(line("addon", text, 1, amount, amount))
      end
    end
  end

  for _, s in ipairs(input.slots or {}) do
    local price = billing.slot_prices[s.arch]
    if not price then error("unknown slot architecture '" .. tostring(s.arch) .. "'") end
    local n = billed_days(p_start, p_end, date.parse(s.started_at), s.cancelled_at and date.parse(s.cancelled_at))
    if n > 0 and s.count > 0 then
      local unit = money.muldiv(price, n, days, "half_up")
      local text = "Extra " .. s.arch .. " slots" .. (n == days and "" or (" (" .. n .. " of " .. days .. " days)"))
      add(line("slots", text, s.count, unit, money.mul(unit, s.count)))
    end
  end

  local daily = input.storage and input.storage.daily_bytes
  if daily and #daily > 0 then
    local byte_days = 0
    for _, bytes in ipairs(daily) do byte_days = money.add(byte_days, bytes) end
    -- rate × average GB = rate × Σ bytes / (10^9 × days in the period)
    local amount = money.muldiv(billing.storage_per_gb_month, byte_days, BYTES_PER_GB * days, "half_up")
    if amount > 0 then add(line("storage", "Storage (average of daily snapshots)", 1, amount, amount)) end
  end

  local c = input.commitment
  if not c and input.contract then
    local monthly = contract_commitment(input.contract, p_start)
    if monthly then c = { monthly_micros = monthly, usage_micros = input.usage_micros or 0 } end
  end
  if c and c.monthly_micros and c.usage_micros < c.monthly_micros then
    local short = money.sub(c.monthly_micros, c.usage_micros)
    add(line("true_up", "Commitment true-up", 1, short, short))
  end

  local covered = math.min(billing.monthly_credit_micros, input.credited_usage_micros or 0)
  if covered > 0 then
    add(line("monthly_credit", "Monthly free credit (" .. money.format(billing.monthly_credit_micros, 2) .. ")", 1, -covered, -covered))
  end

  return { lines = lines, total_micros = total }
end

-- The payment provider's fee on each successful charge (Stripe's card pricing: 2.9 % + $0.30),
-- booked as an expense (5010) when a payment is recorded.
billing.payment_fee_percent = "2.9"
billing.payment_fee_fixed_micros = money.parse("0.30")

--- payment_fee({ amount_micros }) -> { fee_micros }
function billing.payment_fee(payment)
  local percent = money.percent(payment.amount_micros, billing.payment_fee_percent, "half_up")
  return { fee_micros = money.add(percent, billing.payment_fee_fixed_micros) }
end

-- Dunning: a failed charge is retried this many days after the first failure; an invoice still
-- unpaid at the end of the 9th of the month after its period suspends the workspace on the 10th.
billing.dunning_retry_days = { 3, 5, 7, 14, 21 }
billing.suspend_on_day = 10

--- dunning({ first_failure_at, period_end }) -> { retry_at = { unix seconds... }, suspend_at }
function billing.dunning(d)
  local retries = {}
  for i, days in ipairs(billing.dunning_retry_days) do retries[i] = d.first_failure_at + days * DAY end
  -- period_end is the 1st of the month after the period (00:00 UTC).
  return { retry_at = retries, suspend_at = d.period_end + (billing.suspend_on_day - 1) * DAY }
end

--- signup_grant(workspace) -> { free_minutes }: what a new workspace is given, once.
function billing.signup_grant(_)
  return { free_minutes = billing.signup_free_minutes }
end

--- eligible(request) -> { eligible, reason }: may this workspace buy an add-on or extra slots?
--- request = { item = "addon" | "slots", id, term, arch, count, sales_approved, workspace = { has_payment_method } }
function billing.eligible(r)
  local function no(reason) return { eligible = false, reason = reason } end
  if not (r.workspace and r.workspace.has_payment_method) then return no("payment_method_required") end
  if r.item == "addon" then
    local addon = billing.addons[r.id]
    if not addon then return no("unknown_addon") end
    if r.term == "prepaid_12" then
      if not addon.prepaid_12 then return no("no_prepaid_term") end
      -- Prepaid years are offered by sales only, not on the public price list.
      if not r.sales_approved then return no("sales_only") end
    elseif r.term ~= nil and r.term ~= "monthly" then
      return no("unknown_term")
    end
  elseif r.item == "slots" then
    if not billing.slot_prices[r.arch] then return no("unknown_arch") end
    if type(r.count) ~= "number" or r.count <= 0 then return no("invalid_count") end
  else
    return no("unknown_item")
  end
  return { eligible = true }
end

local function days_of(n, bytes, total_days)
  local t = {}
  for i = 1, total_days do t[i] = i > total_days - n and bytes or 0 end
  return t
end

local NOV = { start = "2026-11-01T00:00:00Z", ["end"] = "2026-12-01T00:00:00Z" }   -- 30 days

billing.examples = {
  { name = "an add-on needs a payment method", call = "eligible",
    input = { item = "addon", id = "macos-m4", workspace = { has_payment_method = false } },
    expect = { eligible = false, reason = "payment_method_required" } },
  { name = "prepaid years are sold by sales only", call = "eligible",
    input = { item = "addon", id = "macos-m4", term = "prepaid_12", workspace = { has_payment_method = true } },
    expect = { eligible = false, reason = "sales_only" } },
  { name = "extra slots with a payment method", call = "eligible",
    input = { item = "slots", arch = "macos", count = 5, workspace = { has_payment_method = true } }, expect = { eligible = true } },
  { name = "50 GB stored all month = $10.00", call = "monthly_lines",
    input = { period = NOV, storage = { daily_bytes = days_of(30, 50 * BYTES_PER_GB, 30) } }, expect = { total_micros = 1000000000 } },
  { name = "20 GB from day 15 of a 30-day month = $2.13", call = "monthly_lines",
    input = { period = NOV, storage = { daily_bytes = days_of(16, 20 * BYTES_PER_GB, 30) } }, expect = { total_micros = 213333333 } },
  { name = "10 extra x64 slots = $70/month", call = "monthly_lines",
    input = { period = NOV, slots = { { arch = "x64", count = 10, started_at = "2026-10-01T00:00:00Z" } } },
    expect = { total_micros = 7000000000 } },
  { name = "5 extra macOS slots = $245/month", call = "monthly_lines",
    input = { period = NOV, slots = { { arch = "macos", count = 5, started_at = "2026-10-01T00:00:00Z" } } },
    expect = { total_micros = 24500000000 } },
  { name = "an add-on started on day 16 is prorated by days", call = "monthly_lines",
    input = { period = NOV, addons = { { id = "priority-queue-boost", term = "monthly", started_at = "2026-11-16T09:00:00Z" } } },
    expect = { total_micros = 2450000000 } },
  { name = "a cancellation keeps the add-on to the end of the cycle", call = "monthly_lines",
    input = { period = NOV, addons = { { id = "macos-m4", term = "monthly", started_at = "2026-01-01T00:00:00Z",
                                         cancelled_at = "2026-11-03T00:00:00Z" } } },
    expect = { total_micros = 3900000000 } },
  { name = "a prepaid year bills once, up front", call = "monthly_lines",
    input = { period = NOV, addons = { { id = "macos-m4", term = "prepaid_12", started_at = "2026-11-10T00:00:00Z" } } },
    expect = { total_micros = 39900000000 } },
  { name = "a $100 payment costs $3.20 in fees", call = "payment_fee", input = { amount_micros = money.usd(100) },
    expect = { fee_micros = 320000000 } },
  { name = "November's invoice: retries on Dec 4, 6, 8, 15, 22; suspension on Dec 10", call = "dunning",
    input = { first_failure_at = 1796083200 + 3600, period_end = 1796083200 },
    expect = { suspend_at = 1796083200 + 9 * 86400 } },
  { name = "a new workspace gets 1,000 free minutes", call = "signup_grant", input = { id = "w1" },
    expect = { free_minutes = 1000 } },
  { name = "the monthly credit covers usage up to $10", call = "monthly_lines",
    input = { period = NOV, credited_usage_micros = money.usd(25) }, expect = { total_micros = -1000000000 } },
  { name = "the monthly credit never exceeds the usage", call = "monthly_lines",
    input = { period = NOV, credited_usage_micros = money.parse("3.50") }, expect = { total_micros = -350000000 } },
  { name = "usage below the commitment is trued up", call = "monthly_lines",
    input = { period = NOV, commitment = { monthly_micros = money.usd(2000), usage_micros = money.usd(1500) } },
    expect = { total_micros = 50000000000 } },
}

return billing
