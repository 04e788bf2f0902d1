-- An example workflow script (not loaded: only files at the top of scripts/ are scripts).
-- Copy it to scripts/queued_job_audit.lua to run one durable workflow per queued job.
return {
  on = {"workflow_job.queued"},          -- one run per matching event (id: script.<name>:<delivery id>)
  task_queue = "default",
  run = function(input)                  -- input: {payload = <webhook JSON>, topic, source, source_id}
    local job = input.payload.workflow_job or {}
    local labels = workflow.step("labels", function()
      return job.labels or {}
    end)
    workflow.set_state("labels", labels)
    workflow.sleep(15 * 60)              -- durable: survives restarts, holds nothing
    local verdict = workflow.signal("reviewed", 24 * 3600)   -- nil after a day without a signal
    return {job_id = job.id, labels = labels, reviewed = verdict ~= nil}
  end,
}
