/// Trusted Lua run after the policy prelude in every workflow-script state. It adds the
/// `workflow` library to the scripts' allow-list. Every durable call yields a request out of
/// the script's coroutine; the driver answers it from the run's recorded calls or returns it
/// to the host, which performs it through the workflow context and runs the script again from
/// the top (DBOS-style replay: no Lua state ever waits across an `await`).
enum LuaWorkflowPrelude {
    static let source = #"""
        local yield, resume, create, status = coroutine.yield, coroutine.resume, coroutine.create, coroutine.status
        local type, error, tostring, pcall, rawget = type, error, tostring, pcall, rawget

        local function reply_of(request)
          local reply = yield(request)
          if type(reply) ~= "table" then
            error("workflow." .. request.op .. " must be called from the script's own flow, not from another coroutine", 3)
          end
          return reply
        end

        local function call(request)
          local reply = reply_of(request)
          if reply.error ~= nil then error(reply.error, 3) end
          return reply.value
        end

        local workflow = {}

        -- Runs fn once and records its result; later runs get the recorded result. retry (optional):
        -- maximum_attempts, initial_interval, backoff_coefficient, maximum_interval (seconds),
        -- non_retryable_error_types.
        function workflow.step(name, fn, retry)
          if type(name) ~= "string" then error("workflow.step: the name must be a string", 2) end
          if type(fn) ~= "function" then error("workflow.step: the second argument must be a function", 2) end
          if retry ~= nil and type(retry) ~= "table" then error("workflow.step: retry must be a table", 2) end
          local reply = reply_of({op = "step", name = name, retry = retry})
          if reply.run then
            local ok, value = pcall(fn)
            if not ok then value = tostring(value) end
            yield({op = "step_result", ok = ok, value = value})
            error("workflow.step: resumed after its result", 0)
          end
          if reply.error ~= nil then error(reply.error, 2) end
          return reply.value
        end

        function workflow.sleep(seconds)
          if type(seconds) ~= "number" or seconds < 0 then error("workflow.sleep: seconds must be a number >= 0", 2) end
          call({op = "sleep", seconds = seconds})
        end

        -- The oldest unconsumed signal `name`; nil when timeout_seconds (optional) pass first.
        function workflow.signal(name, timeout_seconds)
          if type(name) ~= "string" then error("workflow.signal: the name must be a string", 2) end
          if timeout_seconds ~= nil and (type(timeout_seconds) ~= "number" or timeout_seconds < 0) then
            error("workflow.signal: timeout_seconds must be a number >= 0", 2)
          end
          return call({op = "signal", name = name, timeout = timeout_seconds})
        end

        -- Ends this run; the workflow starts again with `input` and an empty history (continue-as-new).
        function workflow.continue_as_new(input)
          call({op = "continue_as_new", input = input})
        end

        -- Starts a child run of a workflow type and returns its output (raises if it failed).
        function workflow.child(workflow_type, input, id)
          if type(workflow_type) ~= "string" then error("workflow.child: the type must be a string", 2) end
          if id ~= nil and type(id) ~= "string" then error("workflow.child: the id must be a string", 2) end
          return call({op = "child", type = workflow_type, input = input, id = id})
        end

        -- Starts an independent run (idempotent by id; the id is derived from this run and call when
        -- nil) and returns its id without waiting for it.
        function workflow.start(workflow_type, input, id)
          if type(workflow_type) ~= "string" then error("workflow.start: the type must be a string", 2) end
          if id ~= nil and type(id) ~= "string" then error("workflow.start: the id must be a string", 2) end
          return call({op = "start", type = workflow_type, input = input, id = id})
        end

        -- Sends the signal `name` with `payload` to the run `id` (once, recorded).
        function workflow.send_signal(id, name, payload)
          if type(id) ~= "string" or type(name) ~= "string" then error("workflow.send_signal: id and name must be strings", 2) end
          call({op = "send_signal", id = id, name = name, payload = payload})
        end

        function workflow.set_state(key, value)
          if type(key) ~= "string" then error("workflow.set_state: the key must be a string", 2) end
          call({op = "state", key = key, value = value})
        end

        -- Unix seconds, recorded once.
        function workflow.now() return call({op = "now"}) end

        __tenki_allow("workflow", workflow)

        -- Offers a module of host functions (installed as a global) to scripts.
        function __tenki_allow_global(name) __tenki_allow(name, _G[name]) end

        function __tenki_workflow_inspect(path)
          local m = __tenki.module(path)
          if type(m) ~= "table" then return {error = "a script must return a table with a function 'run'"} end
          if type(rawget(m, "run")) ~= "function" then return {error = "a script must export a function 'run'"} end
          local match = rawget(m, "match")
          if match ~= nil and type(match) ~= "function" then
            return {error = "'match' must be a function(event) that returns true to start a run"}
          end
          return {on = rawget(m, "on"), task_queue = rawget(m, "task_queue"), match = match ~= nil}
        end

        -- The script's `match(event)`: true only when it returns exactly true.
        function __tenki_workflow_match(path, event)
          return __tenki.module(path).match(event) == true
        end

        -- Runs the script's `run` from the top. answers[k] answers durable call k ({value = ...} or
        -- {error = "..."}); call number execute_at, if it is a step without an answer, runs its body.
        function __tenki_workflow_drive(path, input, answers, execute_at)
          local co = create(__tenki.module(path).run)
          local ok, request = resume(co, input)
          local k = 0
          while true do
            if not ok then return {failed = tostring(request)} end
            if status(co) == "dead" then return {done = true, value = request} end
            if type(request) ~= "table" or type(request.op) ~= "string" then
              return {failed = path .. ": the script yielded outside workflow.*"}
            end
            if request.op == "step_result" then return {executed = true, ok = request.ok, value = request.value} end
            k = k + 1
            local answer = answers[k]
            if answer ~= nil then
              ok, request = resume(co, answer)
            elseif k == execute_at and request.op == "step" then
              ok, request = resume(co, {run = true})
            else
              return {need = request, index = k}
            end
          end
        end
        """#
}
