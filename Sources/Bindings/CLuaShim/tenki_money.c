// `money` and `date`: the only arithmetic policies need for amounts and times, in integers.
// Amounts are micro-cents (1 USD = 100,000,000). Every operation checks overflow and raises
// instead of wrapping; a float where an amount is expected is an error, never rounded silently.
#include "tenki_lua.h"

#include <string.h>

#define MICROS_PER_USD 100000000LL
#define MICROS_DECIMALS 8

static lua_Integer amount_arg(lua_State *L, int arg) {
    if (!lua_isinteger(L, arg)) {
        if (lua_type(L, arg) == LUA_TNUMBER) {
            luaL_error(L, "bad argument #%d: expected an integer amount in micro-cents, got a float (%s)",
                       arg, lua_tostring(L, arg));
        }
        luaL_typeerror(L, arg, "integer amount");
    }
    return lua_tointeger(L, arg);
}

static void push_checked(lua_State *L, __int128 value, const char *what) {
    if (value > LUA_MAXINTEGER || value < LUA_MININTEGER) luaL_error(L, "money overflow in %s", what);
    lua_pushinteger(L, (lua_Integer)value);
}

/// Parses "[-]digits[.digits]" with up to `decimals` fraction digits into an integer scaled by
/// 10^decimals. Returns 0 on success.
static int parse_decimal(const char *s, size_t len, int decimals, __int128 *out) {
    size_t i = 0;
    int negative = 0;
    if (i < len && (s[i] == '-' || s[i] == '+')) { negative = s[i] == '-'; i++; }
    if (i >= len || s[i] < '0' || s[i] > '9') return 1;
    __int128 value = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        value = value * 10 + (s[i] - '0');
        if (value > (__int128)LUA_MAXINTEGER) return 2;
        i++;
    }
    int fraction = 0;
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len) return 1;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (fraction == decimals) return 3;
            value = value * 10 + (s[i] - '0');
            fraction++;
            i++;
        }
    }
    if (i != len) return 1;
    for (; fraction < decimals; fraction++) value *= 10;
    if (value > (__int128)LUA_MAXINTEGER) return 2;
    *out = negative ? -value : value;
    return 0;
}

/// money.parse("0.003") -> 300000: USD as a decimal string, exactly.
static int money_parse(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    __int128 value;
    switch (parse_decimal(s, len, MICROS_DECIMALS, &value)) {
    case 0: lua_pushinteger(L, (lua_Integer)value); return 1;
    case 2: return luaL_error(L, "money.parse: '%s' overflows", s);
    case 3: return luaL_error(L, "money.parse: '%s' has more than 8 decimals (micro-cents)", s);
    default: return luaL_error(L, "money.parse: '%s' is not a decimal amount like \"0.003\"", s);
    }
}

typedef enum { ROUND_DOWN, ROUND_UP, ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_FLOOR, ROUND_CEIL } rounding;

static rounding rounding_arg(lua_State *L, int arg) {
    static const char *const names[] = {"down", "up", "half_up", "half_even", "floor", "ceil", NULL};
    if (lua_isnoneornil(L, arg)) return (rounding)luaL_error(L, "bad argument #%d: a rounding mode is required "
                                                             "(down, up, half_up, half_even, floor, ceil)", arg);
    return (rounding)luaL_checkoption(L, arg, NULL, names);
}

/// n / d rounded by mode (d > 0). "down"/"up" are toward/away from zero.
static __int128 divide(__int128 n, __int128 d, rounding mode) {
    __int128 q = n / d, r = n % d;
    if (r == 0) return q;
    int positive = n >= 0;
    __int128 twice = (r < 0 ? -r : r) * 2;
    switch (mode) {
    case ROUND_DOWN: return q;
    case ROUND_UP: return positive ? q + 1 : q - 1;
    case ROUND_FLOOR: return positive ? q : q - 1;
    case ROUND_CEIL: return positive ? q + 1 : q;
    case ROUND_HALF_UP: return twice >= d ? (positive ? q + 1 : q - 1) : q;
    case ROUND_HALF_EVEN:
        if (twice > d || (twice == d && (q % 2 != 0))) return positive ? q + 1 : q - 1;
        return q;
    }
    return q;
}

static int money_add(lua_State *L) {
    push_checked(L, (__int128)amount_arg(L, 1) + amount_arg(L, 2), "money.add");
    return 1;
}

static int money_sub(lua_State *L) {
    push_checked(L, (__int128)amount_arg(L, 1) - amount_arg(L, 2), "money.sub");
    return 1;
}

/// money.mul(amount, n): amount × an integer count.
static int money_mul(lua_State *L) {
    push_checked(L, (__int128)amount_arg(L, 1) * amount_arg(L, 2), "money.mul");
    return 1;
}

/// money.muldiv(amount, numerator, denominator, mode): amount × n / d with explicit rounding.
static int money_muldiv(lua_State *L) {
    __int128 a = amount_arg(L, 1), n = amount_arg(L, 2), d = amount_arg(L, 3);
    rounding mode = rounding_arg(L, 4);
    if (d == 0) return luaL_error(L, "money.muldiv: division by zero");
    if (d < 0) { d = -d; n = -n; }
    push_checked(L, divide(a * n, d, mode), "money.muldiv");
    return 1;
}

/// money.percent(amount, "12.5", mode): amount × p / 100; p a decimal string (≤ 6 decimals) or integer.
static int money_percent(lua_State *L) {
    __int128 a = amount_arg(L, 1);
    __int128 scaled;
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 2, &len);
        if (parse_decimal(s, len, 6, &scaled) != 0) return luaL_error(L, "money.percent: bad percentage '%s'", s);
    } else {
        scaled = (__int128)amount_arg(L, 2) * 1000000;
    }
    rounding mode = rounding_arg(L, 3);
    push_checked(L, divide(a * scaled, (__int128)100 * 1000000, mode), "money.percent");
    return 1;
}

/// money.usd(dollars[, cents]): whole dollars (and cents) as micro-cents.
static int money_usd(lua_State *L) {
    __int128 v = (__int128)amount_arg(L, 1) * MICROS_PER_USD;
    if (!lua_isnoneornil(L, 2)) v += (__int128)amount_arg(L, 2) * (MICROS_PER_USD / 100);
    push_checked(L, v, "money.usd");
    return 1;
}

/// money.format(micros[, decimals=2]): "$12.35", rounded half-up for display only.
static int money_format(lua_State *L) {
    __int128 v = amount_arg(L, 1);
    lua_Integer decimals = luaL_optinteger(L, 2, 2);
    if (decimals < 0 || decimals > MICROS_DECIMALS) return luaL_error(L, "money.format: decimals must be 0..8");
    __int128 unit = 1;
    for (int i = 0; i < MICROS_DECIMALS - decimals; i++) unit *= 10;
    __int128 rounded = divide(v, unit, ROUND_HALF_UP);
    int negative = rounded < 0;
    if (negative) rounded = -rounded;
    __int128 scale = 1;
    for (int i = 0; i < decimals; i++) scale *= 10;
    long long whole = (long long)(rounded / scale), frac = (long long)(rounded % scale);
    if (decimals == 0) lua_pushfstring(L, "%s$%I", negative ? "-" : "", (lua_Integer)whole);
    else {
        char buf[64];
        snprintf(buf, sizeof buf, "%s$%lld.%0*lld", negative ? "-" : "", whole, (int)decimals, frac);
        lua_pushstring(L, buf);
    }
    return 1;
}

// ---- date: UTC only, pure ----

static long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static int days_in_month(long long y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return days[m - 1];
}

/// date.parse("2021-08-05T10:34:58Z") -> Unix seconds. Only this UTC form (fraction allowed).
static int date_parse(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    // Fixed layout YYYY-MM-DDThh:mm:ss, digits checked by hand (no sscanf on the hot path).
    static const char layout[] = "dddd-dd-ddTdd:dd:dd";
    if (len < 20) return luaL_error(L, "date.parse: '%s' is not YYYY-MM-DDThh:mm:ssZ", s);
    for (int k = 0; k < 19; k++) {
        int ok = layout[k] == 'd' ? (s[k] >= '0' && s[k] <= '9') : s[k] == layout[k];
        if (!ok) return luaL_error(L, "date.parse: '%s' is not YYYY-MM-DDThh:mm:ssZ", s);
    }
#define D2(i) ((s[i] - '0') * 10 + (s[i + 1] - '0'))
    int Y = D2(0) * 100 + D2(2), M = D2(5), D = D2(8), h = D2(11), m = D2(14), sec = D2(17);
#undef D2
    size_t i = 19;
    if (s[i] == '.') { i++; while (i < len && s[i] >= '0' && s[i] <= '9') i++; }
    if (i != len - 1 || s[i] != 'Z') return luaL_error(L, "date.parse: '%s' must be UTC and end in Z", s);
    if (M < 1 || M > 12 || D < 1 || D > days_in_month(Y, M) || h > 23 || m > 59 || sec > 60)
        return luaL_error(L, "date.parse: '%s' is not a valid date", s);
    lua_pushinteger(L, days_from_civil(Y, M, D) * 86400 + h * 3600 + m * 60 + sec);
    return 1;
}

/// date.days_in_month(year, month)
static int date_days_in_month(lua_State *L) {
    lua_Integer y = luaL_checkinteger(L, 1), m = luaL_checkinteger(L, 2);
    if (m < 1 || m > 12) return luaL_error(L, "date.days_in_month: month must be 1..12");
    lua_pushinteger(L, days_in_month(y, (int)m));
    return 1;
}

/// date.parts(unix) -> {year, month, day, hour, minute, second, weekday (1 = Monday)}
static int date_parts(lua_State *L) {
    lua_Integer t = luaL_checkinteger(L, 1);
    long long days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    long long secs = t - days * 86400;
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = (long long)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned mo = mp < 10 ? mp + 3 : mp - 9;
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, y + (mo <= 2)); lua_setfield(L, -2, "year");
    lua_pushinteger(L, mo); lua_setfield(L, -2, "month");
    lua_pushinteger(L, d); lua_setfield(L, -2, "day");
    lua_pushinteger(L, secs / 3600); lua_setfield(L, -2, "hour");
    lua_pushinteger(L, (secs % 3600) / 60); lua_setfield(L, -2, "minute");
    lua_pushinteger(L, secs % 60); lua_setfield(L, -2, "second");
    lua_pushinteger(L, ((days % 7) + 7 + 3) % 7 + 1); lua_setfield(L, -2, "weekday");
    return 1;
}

static int open_money(lua_State *L) {
    static const luaL_Reg money[] = {
        {"parse", money_parse}, {"add", money_add}, {"sub", money_sub}, {"mul", money_mul},
        {"muldiv", money_muldiv}, {"percent", money_percent}, {"usd", money_usd}, {"format", money_format},
        {NULL, NULL}};
    static const luaL_Reg date[] = {
        {"parse", date_parse}, {"days_in_month", date_days_in_month}, {"parts", date_parts}, {NULL, NULL}};
    luaL_newlib(L, money);
    lua_pushinteger(L, MICROS_PER_USD);
    lua_setfield(L, -2, "MICROS_PER_USD");
    lua_setglobal(L, "money");
    luaL_newlib(L, date);
    lua_setglobal(L, "date");
    return 0;
}

int tenki_lua_open_money(lua_State *L) {
    lua_pushcfunction(L, open_money);
    return tenki_lua_pcall(L, 0, 0);
}
