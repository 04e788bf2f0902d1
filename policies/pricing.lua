-- Pricing: runner SKUs, label matching, per-minute rates, premium surcharge, round-up and free
-- minutes (docs/PRODUCT.md §1-§3). Every amount is an integer in micro-cents (1 USD = 100,000,000);
-- money.parse turns the decimal prices below into exact integers.
local pricing = {}

-- The offerings. `labels` are the runs-on labels that ask for the SKU; the premium label asks
-- for the same machine with the premium surcharge (x64 only).
pricing.skus = {
  { id = "x64-2c-4gb",   name = "x64 2c-4GB",       arch = "x64",   vcpu = 2,  memory_gb = 4,
    rate = money.parse("0.003"), premium = money.parse("0.0015"), label = "2c-4gb" },
  { id = "x64-4c-8gb",   name = "x64 4c-8GB",       arch = "x64",   vcpu = 4,  memory_gb = 8,
    rate = money.parse("0.006"), premium = money.parse("0.003"),  label = "4c-8gb" },
  { id = "x64-8c-16gb",  name = "x64 8c-16GB",      arch = "x64",   vcpu = 8,  memory_gb = 16,
    rate = money.parse("0.012"), premium = money.parse("0.006"),  label = "8c-16gb" },
  { id = "x64-16c-32gb", name = "x64 16c-32GB",     arch = "x64",   vcpu = 16, memory_gb = 32,
    rate = money.parse("0.024"), premium = money.parse("0.012"),  label = "16c-32gb" },
  { id = "x64-32c-128gb", name = "x64 32c-128GB",   arch = "x64",   vcpu = 32, memory_gb = 128,
    rate = money.parse("0.048"), premium = money.parse("0.024"),  label = "32c-128gb" },
  { id = "x64-64c-256gb", name = "x64 64c-256GB",   arch = "x64",   vcpu = 64, memory_gb = 256,
    rate = money.parse("0.096"), premium = money.parse("0.048"),  label = "64c-256gb" },
  { id = "macos-m4-6c",  name = "macOS M4 6 vCPU",  arch = "macos", vcpu = 6,  memory_gb = 14,
    rate = money.parse("0.040"), label = "m4-6c" },
  { id = "macos-m4-12c", name = "macOS M4 12 vCPU", arch = "macos", vcpu = 12, memory_gb = 28,
    rate = money.parse("0.080"), label = "m4-12c" },
}

-- Free minutes are normalised to 2 vCPU: a minute on N vCPU takes N / 2 of them.
pricing.free_minute_vcpu = 2

local by_id, by_label = {}, {}
for _, sku in ipairs(pricing.skus) do
  by_id[sku.id] = sku
  -- Display texts, made once here rather than on every evaluation.
  sku.rate_text = sku.name .. ": min at " .. money.format(sku.rate, 4) .. "/min"
  sku.free_text = sku.name .. ": free minutes"
  if sku.premium then sku.premium_text = sku.name .. ": premium surcharge " .. money.format(sku.premium, 4) .. "/min" end
  if sku.arch == "macos" then
    by_label["tenki-macos-" .. sku.label] = { sku = sku, premium = false }
  else
    by_label["tenki-standard-" .. sku.label] = { sku = sku, premium = false }
    by_label["tenki-" .. sku.label] = { sku = sku, premium = false }
    by_label["tenki-premium-" .. sku.label] = { sku = sku, premium = true }
  end
end

-- Labels GitHub or users add that say nothing about the machine.
local neutral = { ["self-hosted"] = true, linux = true, x64 = true, macos = true, arm64 = true }

--- match(labels) -> sku, premium | nil, reason
--- Strict: exactly one Tenki label, known, and nothing else but neutral labels. A job asking for
--- anything else is not given a bigger or different runner; it is not ours.
function pricing.match(labels)
  if type(labels) ~= "table" then return nil, "no labels" end
  local found
  for _, label in ipairs(labels) do
    -- Labels are usually lower case already: look them up as given before lowering (no new string).
    local entry = by_label[label]
    local key = label
    if not entry and not neutral[label] then
      key = string.lower(label)
      entry = by_label[key]
    end
    if entry then
      if found then return nil, "more than one Tenki label" end
      found = entry
    elseif not neutral[key] then
      return nil, "label '" .. label .. "' matches no offering"
    end
  end
  if not found then return nil, "no Tenki label" end
  return found.sku, found.premium
end

--- The workspace's contract in force at the job's completion, if any (contracts/<name>.lua).
local function contract_for(job, completed)
  local name = job.workspace and job.workspace.contract
  if name == nil then return nil end
  if type(name) ~= "string" or not name:match("^[%w_%-]+$") then error("bad contract name '" .. tostring(name) .. "'") end
  local contract = require("contracts." .. name)
  if completed < date.parse(contract.starts) or completed >= date.parse(contract.ends) then return nil end
  return contract
end

local function ceil_minutes(seconds)
  return (seconds + 59) // 60
end

--- free_minutes(sku, minutes, available): free minutes are consumed before money, in whole
--- billable minutes; each minute takes vCPU / 2 of them, and a remainder too small for a minute
--- stays on the balance.
--- Returns per_minute, covered_minutes, charged_minutes (no table: this runs on every price).
function pricing.free_minutes(sku, minutes, available)
  local per_minute = sku.vcpu // pricing.free_minute_vcpu
  local covered = math.min(minutes, available // per_minute)
  return per_minute, covered, minutes - covered
end

--- consume(job) -> { matched, sku, billable_minutes, free_minutes_consumed, charged_minutes }
function pricing.consume(job)
  local sku = job.sku and by_id[job.sku] or pricing.match(job.labels)
  if not sku then return { matched = false } end
  local minutes = ceil_minutes(date.parse(job.completed_at) - date.parse(job.started_at))
  local per_minute, covered, charged = pricing.free_minutes(sku, minutes, job.workspace and job.workspace.free_minutes_remaining or 0)
  return { matched = true, sku = sku.id, billable_minutes = minutes, free_minutes_consumed = covered * per_minute,
           charged_minutes = charged }
end

--- price(job) -> { matched, sku, billable_minutes, free_minutes_consumed, amount_micros, lines }
function pricing.price(job)
  local sku, premium
  if job.sku then
    sku = by_id[job.sku]
    premium = job.premium == true
    if not sku then return { matched = false, reason = "unknown sku '" .. tostring(job.sku) .. "'" } end
  else
    sku, premium = pricing.match(job.labels)
    if not sku then return { matched = false, reason = premium } end
  end
  if premium and not sku.premium then error("premium is not offered for " .. sku.name) end

  local completed = date.parse(job.completed_at)
  local seconds = completed - date.parse(job.started_at)
  if seconds < 0 then error("completed_at is before started_at") end
  local contract = contract_for(job, completed)
  local rate = (contract and contract.rates and contract.rates[sku.id]) or sku.rate
  local minutes = ceil_minutes(seconds)

  local per_minute, covered, charged = pricing.free_minutes(sku, minutes, job.workspace and job.workspace.free_minutes_remaining or 0)

  local lines = {}
  if covered > 0 then
    lines[#lines + 1] = { description = sku.free_text, quantity = covered, unit_price_micros = 0, amount_micros = 0 }
  end
  local total = 0
  if charged > 0 then
    local amount = money.mul(rate, charged)
    local text = rate == sku.rate and sku.rate_text or (sku.name .. ": min at " .. money.format(rate, 4) .. "/min (contract rate)")
    lines[#lines + 1] = { description = text, quantity = charged, unit_price_micros = rate, amount_micros = amount }
    total = money.add(total, amount)
    if premium then
      local surcharge = money.mul(sku.premium, charged)
      lines[#lines + 1] = { description = sku.premium_text, quantity = charged, unit_price_micros = sku.premium,
                            amount_micros = surcharge }
      total = money.add(total, surcharge)
    end
    if contract and contract.discount_percent then
      local discount = money.percent(total, contract.discount_percent, "half_up")
      if discount > 0 then
        lines[#lines + 1] = { description = "contract discount " .. contract.discount_percent .. "%", quantity = 1,
                              unit_price_micros = -discount, amount_micros = -discount }
        total = money.sub(total, discount)
      end
    end
  end

  return {
    matched = true,
    sku = sku.id,
    premium = premium,
    billable_minutes = minutes,
    free_minutes_consumed = covered * per_minute,
    amount_micros = total,
    lines = lines,
  }
end

local function job(labels, minutes, seconds, free)
  local total = minutes * 60 + (seconds or 0)
  return {
    labels = labels,
    started_at = "2026-01-05T10:00:00Z",
    completed_at = string.format("2026-01-05T10:%02d:%02dZ", total // 60, total % 60),
    workspace = { free_minutes_remaining = free or 0, has_payment_method = true, addons = {} },
  }
end

-- The worked examples of the specification, run before any change is swapped in.
pricing.examples = {
  { name = "10 min on 2c-4GB = $0.03", call = "price", input = job({ "tenki-standard-2c-4gb" }, 10),
    expect = { sku = "x64-2c-4gb", billable_minutes = 10, amount_micros = 3000000 } },
  { name = "15 min on 4c-8GB = $0.09", call = "price", input = job({ "tenki-standard-4c-8gb" }, 15),
    expect = { amount_micros = 9000000 } },
  { name = "premium 2c-4GB 10 min = $0.045", call = "price", input = job({ "tenki-premium-2c-4gb" }, 10),
    expect = { amount_micros = 4500000 } },
  { name = "premium 4c-8GB 10 min = $0.090", call = "price", input = job({ "tenki-premium-4c-8gb" }, 10),
    expect = { amount_micros = 9000000 } },
  { name = "4 vCPU for 10 min consumes 20 free minutes", call = "price", input = job({ "tenki-4c-8gb" }, 10, 0, 1000),
    expect = { free_minutes_consumed = 20, amount_micros = 0 } },
  { name = "8 vCPU for 10 min consumes 40 free minutes", call = "price", input = job({ "tenki-8c-16gb" }, 10, 0, 1000),
    expect = { free_minutes_consumed = 40, amount_micros = 0 } },
  { name = "10 free minutes left, 4 vCPU 10 min: 5 free, 5 charged = $0.03", call = "price",
    input = job({ "tenki-4c-8gb" }, 10, 0, 10), expect = { free_minutes_consumed = 10, amount_micros = 3000000 } },
  { name = "3.5 minutes bills as 4", call = "price", input = job({ "tenki-2c-4gb" }, 3, 30),
    expect = { billable_minutes = 4, amount_micros = 1200000 } },
  { name = "macOS 6 vCPU takes 3 free minutes a minute", call = "price", input = job({ "tenki-macos-m4-6c" }, 2, 0, 100),
    expect = { free_minutes_consumed = 6, amount_micros = 0 } },
  { name = "consume: 4 vCPU for 10 min takes 20 free minutes", call = "consume", input = job({ "tenki-4c-8gb" }, 10, 0, 1000),
    expect = { free_minutes_consumed = 20, charged_minutes = 0 } },
  { name = "consume: a remainder too small for a minute stays", call = "consume", input = job({ "tenki-8c-16gb" }, 10, 0, 7),
    expect = { free_minutes_consumed = 4, charged_minutes = 9 } },
  { name = "labels matching no offering are not ours", call = "price", input = job({ "ubuntu-latest" }, 10),
    expect = { matched = false } },
  { name = "an unknown Tenki size is not rounded to another", call = "price", input = job({ "tenki-standard-3c-6gb" }, 10),
    expect = { matched = false } },
}

return pricing
