-- Abuse rules (docs/PRODUCT.md §9), evaluated on signup and on every job event. Each returns a
-- score (0-100), an action — allow, flag, require_payment_method, block, suspend — and the reasons.
local abuse = {}

local ORDER = { allow = 0, flag = 1, require_payment_method = 2, block = 3, suspend = 4 }

local function verdict()
  local v = { score = 0, action = "allow", reasons = {} }
  function v.add(score, action, reason)
    if score > v.score then v.score = score end
    if ORDER[action] > ORDER[v.action] then v.action = action end
    v.reasons[#v.reasons + 1] = reason
  end
  return v
end

local function result(v) return { score = v.score, action = v.action, reasons = v.reasons } end

-- Email domains shared by many unrelated people: several signups from them mean nothing.
abuse.webmail = { ["gmail.com"] = true, ["outlook.com"] = true, ["hotmail.com"] = true, ["yahoo.com"] = true,
                  ["proton.me"] = true, ["protonmail.com"] = true, ["icloud.com"] = true }

--- on_signup(signup): signup.history counts earlier workspaces sharing something with this one.
function abuse.on_signup(signup)
  local v = verdict()
  local h = signup.history or {}
  if (h.same_account or 0) > 0 then v.add(80, "require_payment_method", "repeated_free_credit_signup:github_account") end
  if (h.same_fingerprint or 0) > 0 then v.add(90, "require_payment_method", "repeated_free_credit_signup:payment_fingerprint") end
  if (h.same_org or 0) > 0 then v.add(60, "require_payment_method", "repeated_free_credit_signup:github_org") end
  local domain = string.lower(signup.email_domain or "")
  if (h.same_email_domain or 0) >= 3 and not abuse.webmail[domain] then
    v.add(40, "flag", "many_signups_from_domain:" .. domain)
  end
  return result(v)
end

-- Names of miners and mining protocols seen in jobs, workflows, steps or labels.
abuse.mining = { "xmrig", "minerd", "cpuminer", "ethminer", "nicehash", "stratum+tcp", "stratum2+tcp", "randomx",
                 "cryptonight", "lolminer", "nbminer", "phoenixminer", "t-rex miner", "hellminer" }
-- Things that look like a game or tunnel server kept alive on a CI runner.
abuse.servers = { "minecraft", "spigot", "paper.jar", "bukkit", "forge-server", "ngrok", "playit.gg", "valheim", "terraria" }

abuse.long_job_seconds = 6 * 3600
abuse.runaway_job_seconds = 24 * 3600

local function texts(job)
  local list = { job.name or "", job.workflow_name or "" }
  for _, s in ipairs(job.steps or {}) do list[#list + 1] = s end
  for _, l in ipairs(job.labels or {}) do list[#list + 1] = l end
  return list
end

local function find(list, needles)
  for _, text in ipairs(list) do
    local lower = string.lower(text)
    for _, needle in ipairs(needles) do
      if string.find(lower, needle, 1, true) then return needle end
    end
  end
  return nil
end

--- on_job(job): name, workflow_name, steps (names), labels, duration_seconds (so far or total).
function abuse.on_job(job)
  local v = verdict()
  local all = texts(job)
  local miner = find(all, abuse.mining)
  if miner then v.add(100, "suspend", "crypto_mining:" .. miner) end
  local server = find(all, abuse.servers)
  local duration = job.duration_seconds or 0
  if server then
    if duration > 30 * 60 then v.add(90, "suspend", "long_lived_server:" .. server)
    else v.add(50, "flag", "server_like_job:" .. server) end
  end
  if duration > abuse.runaway_job_seconds then v.add(70, "block", "runaway_duration")
  elseif duration > abuse.long_job_seconds then v.add(30, "flag", "long_duration") end
  return result(v)
end

abuse.examples = {
  { name = "a first signup is allowed", call = "on_signup",
    input = { email_domain = "example.com", history = {} }, expect = { action = "allow", score = 0 } },
  { name = "the same GitHub account signing up again must pay", call = "on_signup",
    input = { email_domain = "example.com", history = { same_account = 1 } }, expect = { action = "require_payment_method" } },
  { name = "the same card on another workspace must pay", call = "on_signup",
    input = { history = { same_fingerprint = 2 } }, expect = { action = "require_payment_method", score = 90 } },
  { name = "many signups from one company domain are flagged", call = "on_signup",
    input = { email_domain = "burner.example", history = { same_email_domain = 5 } }, expect = { action = "flag" } },
  { name = "many signups from gmail mean nothing", call = "on_signup",
    input = { email_domain = "gmail.com", history = { same_email_domain = 50 } }, expect = { action = "allow" } },
  { name = "a miner in a step suspends", call = "on_job",
    input = { name = "build", steps = { "Checkout", "./xmrig -o stratum+tcp://pool:3333" } }, expect = { action = "suspend", score = 100 } },
  { name = "a Minecraft server kept running suspends", call = "on_job",
    input = { name = "run Minecraft server", duration_seconds = 7200 }, expect = { action = "suspend" } },
  { name = "an ordinary long build is only flagged", call = "on_job",
    input = { name = "integration tests", duration_seconds = 7 * 3600 }, expect = { action = "flag" } },
  { name = "an ordinary job is allowed", call = "on_job",
    input = { name = "test", workflow_name = "CI", steps = { "npm test" }, duration_seconds = 300 }, expect = { action = "allow" } },
}

return abuse
