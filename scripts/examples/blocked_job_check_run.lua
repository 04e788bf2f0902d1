-- Tells the developer why a job is not running: when the runner blocks a job (no payment method,
-- a missing add-on, a suspended workspace, an unpaid invoice, abuse), post a check run on the job's commit saying so
-- and what to do. Copy it to scripts/ to run it; it needs the GitHub App (github_app_id) with the
-- "Checks: write" permission.
local advice = {
  payment_method_required = "The workspace has used its free minutes. Add a payment method in Tenki to run more jobs.",
  addon_required = "This runner needs an add-on the workspace does not have (macOS runners need the macOS add-on).",
  workspace_suspended = "The workspace is suspended by Tenki's operators. Contact support.",
  payment_overdue = "The workspace is suspended for an unpaid invoice. Paying it (or adding a working card) lifts the suspension at once.",
  abuse = "The workspace's jobs are held for review by Tenki's abuse rules. Contact support.",
}

return {
  on = {"runner_job.blocked"},           -- published by the runner when admission blocks a job
  run = function(input)                  -- input.payload: installation_id, repository, job_id, name, head_sha, reason, ...
    local job = input.payload
    if not job.head_sha then return {posted = false, why = "no commit"} end
    local answer = workflow.step("post_check_run", function()
      return github.request(job.installation_id, "POST", "/repos/" .. job.repository .. "/check-runs", {
        name = "Tenki runners",
        head_sha = job.head_sha,
        status = "completed",
        conclusion = "action_required",
        output = {
          title = "Job '" .. job.name .. "' is waiting: " .. job.reason,
          summary = advice[job.reason] or ("The job is blocked: " .. job.reason),
        },
      })
    end, {maximum_attempts = 5, initial_interval = 10})
    if answer.status >= 300 then error("GitHub answered " .. answer.status .. ": " .. tostring(answer.error)) end
    return {posted = true, check_run = answer.body and answer.body.id}
  end,
}
