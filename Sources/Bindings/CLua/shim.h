// Debian's C build of Lua 5.4 (liblua5.4-dev). Never the C++ build: it raises C++ exceptions.
#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>
