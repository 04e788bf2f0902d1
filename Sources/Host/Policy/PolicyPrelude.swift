/// Trusted Lua run first in every policy state. It builds each policy's environment: a fresh
/// copy of the allow-listed globals (so a policy cannot change `string` or `math` for another),
/// strict reads (an unknown global is an error, not nil), and `require` limited to the policy
/// set. Policies never see the state's real globals. Workflow scripts reuse it, adding their
/// `workflow` library to the allow-list with `__tenki_allow`.
package enum PolicyPrelude {
    package static let source = #"""
        local allowed = {
          "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring", "type",
          "xpcall", "rawequal", "rawlen", "rawget", "rawset", "setmetatable", "getmetatable", "load",
          "string", "table", "math", "utf8", "coroutine", "money", "date",
        }
        local BASE = {}
        for _, name in ipairs(allowed) do BASE[name] = _G[name] end
        local load, pairs, type, error, setmetatable, tostring = load, pairs, type, error, setmetatable, tostring

        local sources = {}    -- "lib/util.lua" -> source text
        local loaded = {}     -- module path -> value
        local loading = {}

        local strict = { __index = function(_, key) error("unknown global '" .. tostring(key) .. "'", 2) end }

        local function environment()
          local env = {}
          for name, value in pairs(BASE) do
            if type(value) == "table" then
              local copy = {}
              for k, v in pairs(value) do copy[k] = v end
              env[name] = copy
            else
              env[name] = value
            end
          end
          env._G = env
          env.require = function(name)
            if type(name) ~= "string" or not name:match("^[%w_][%w_%.%-]*$") or name:find("..", 1, true) then
              error("require: bad module name '" .. tostring(name) .. "'", 2)
            end
            return __tenki.module(name:gsub("%.", "/") .. ".lua")
          end
          return setmetatable(env, strict)
        end

        __tenki = {}

        function __tenki.module(path)
          if loaded[path] ~= nil then return loaded[path] end
          local source = sources[path]
          if source == nil then error("require: no policy module '" .. path .. "' in the policy set", 3) end
          if loading[path] then error("require: cycle through '" .. path .. "'", 3) end
          loading[path] = true
          local chunk, err = load(source, "@" .. path, "t", environment())
          if not chunk then loading[path] = nil; error(err, 0) end
          local value = chunk()
          loading[path] = nil
          if value == nil then value = true end
          loaded[path] = value
          return value
        end

        -- Entry points the host calls by name (the policies never see these globals).
        function __tenki_add_source(path, source) sources[path] = source end
        function __tenki_allow(name, value) BASE[name] = value end
        function __tenki_module_type(path) return type(__tenki.module(path)) end
        function __tenki_export_type(path, name)
          local m = __tenki.module(path)
          return type(m) == "table" and type(rawget(m, name)) or "nil"
        end
        function __tenki_export(path, name)
          local m = __tenki.module(path)
          return type(m) == "table" and rawget(m, name) or nil
        end
        function __tenki_field(path, name)
          local m = __tenki.module(path)
          if type(m) ~= "table" then return nil end
          return rawget(m, name)
        end
        """#
}
